package transport

import (
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/types/known/structpb"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// A query's answer is marshaled once per message; other messages, and
// other answers, as they are.
func TestMemoJSON(t *testing.T) {
	m := newMemoJSON(&runtime.JSONPb{})
	answer := &tokenbrokerv1.RunQueryResponse{Columns: []*tokenbrokerv1.QueryColumn{{Name: "city", Type: "string"}}}
	first, err := m.Marshal(answer)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.Marshal(answer)
	if &first[0] != &again[0] {
		t.Error("the same answer was marshaled twice")
	}
	other := &tokenbrokerv1.RunQueryResponse{}
	if b, _ := m.Marshal(other); string(b) == string(first) {
		t.Errorf("another answer got the first's JSON: %s", b)
	}
	fc, _ := structpb.NewStruct(map[string]any{"type": "FeatureCollection"})
	if b, _ := m.Marshal(fc); string(b) != `{"type":"FeatureCollection"}` {
		t.Errorf("a FeatureCollection: %s", b)
	}
	if _, err := m.Marshal(&tokenbrokerv1.LoginResponse{Token: "t"}); err != nil || len(m.byMsg) != 3 {
		t.Errorf("another message: %v, %d kept; want it not kept", err, len(m.byMsg))
	}
	m.bytes = memoBytes // as if full: the next one starts afresh
	if _, err := m.Marshal(&tokenbrokerv1.RunQueryResponse{}); err != nil || len(m.byMsg) != 1 {
		t.Errorf("past the bound: %v, %d kept; want 1", err, len(m.byMsg))
	}
}
