package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/audit"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
)

// noUsers counts the password checks that reach it.
type noUsers struct{ checks atomic.Int64 }

func (u *noUsers) Authenticate(context.Context, string, string) (auth.User, error) {
	u.checks.Add(1)
	return auth.User{}, auth.ErrInvalidCredentials
}

// Finding 9: an oversized string in any request is refused before any work,
// naming the field and its bound but not echoing the value, and the audit
// line stays small.
func TestAttackOversizedInputs(t *testing.T) {
	users := &noUsers{}
	var auditLog bytes.Buffer
	svc := NewService(Config{Broker: broker.New(broker.Config{Users: users}), Logger: slog.New(slog.DiscardHandler), Audit: audit.New(slog.NewJSONHandler(&auditLog, nil))})
	admin := auth.WithPrincipal(context.Background(), auth.Principal{Kind: auth.KindUser, Subject: "admin", Group: "BOSTON", Admin: true, SessionID: "s"})
	huge := func(n int) string { return strings.Repeat("Z", n) }
	tests := []struct {
		name, field string
		limit       int
		call        func() error
	}{
		{"65 KB username", "username", 256, func() error {
			_, err := svc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: huge(65 << 10), Password: "x"})
			return err
		}},
		{"username one byte over", "username", 256, func() error {
			_, err := svc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: huge(257), Password: "x"})
			return err
		}},
		{"password over bcrypt's 72 bytes", "password", 72, func() error {
			_, err := svc.Login(context.Background(), &tokenbrokerv1.LoginRequest{Username: "u", Password: huge(73)})
			return err
		}},
		{"issue: group", "group", 256, func() error {
			_, err := svc.IssueCartoToken(admin, &tokenbrokerv1.IssueCartoTokenRequest{Group: huge(1 << 20)})
			return err
		}},
		{"revoke: carto_token", "carto_token", 4096, func() error {
			_, err := svc.RevokeToken(admin, &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_CartoToken{CartoToken: huge(4097)}})
			return err
		}},
		{"revoke: group", "group", 256, func() error {
			_, err := svc.RevokeToken(admin, &tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_Group{Group: huge(300)}})
			return err
		}},
		{"list: group", "group", 256, func() error {
			_, err := svc.ListTokens(admin, &tokenbrokerv1.ListTokensRequest{Group: huge(300)})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auditLog.Reset()
			st := status.Convert(tt.call())
			want := fmt.Sprintf("%s is longer than %d bytes", tt.field, tt.limit)
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), want) || strings.Contains(st.Message(), "ZZZ") {
				t.Fatalf("got %v %q, want INVALID_ARGUMENT saying %q without the value", st.Code(), st.Message(), want)
			}
			if n := users.checks.Load(); n != 0 {
				t.Fatalf("%d passwords checked", n)
			}
			if auditLog.Len() == 0 || auditLog.Len() > 1024 {
				t.Fatalf("audit line of %d bytes, want one under 1 KiB: %.300s", auditLog.Len(), auditLog.String())
			}
		})
	}
}

// Finding 9: every string field of every request has a bound of its own, and
// every bound names a real field (a new field cannot go unbounded unnoticed).
func TestInputLimitsCoverEveryField(t *testing.T) {
	sd := tokenbrokerv1.File_tokenbroker_v1_tokenbroker_proto.Services().ByName("TokenBroker")
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			switch fd.Kind() {
			case protoreflect.StringKind, protoreflect.BytesKind:
				seen[fd.FullName()] = true
				if _, ok := maxLen[fd.FullName()]; !ok {
					t.Errorf("%s has no bound in maxLen", fd.FullName())
				}
			case protoreflect.MessageKind:
				walk(fd.Message())
			}
		}
	}
	for i := range sd.Methods().Len() {
		walk(sd.Methods().Get(i).Input())
	}
	for name := range maxLen {
		if !seen[name] {
			t.Errorf("maxLen bounds %s, which no request has", name)
		}
	}
	// Within the bounds, nothing is refused.
	ok := []proto.Message{
		&tokenbrokerv1.LoginRequest{Username: strings.Repeat("u", 256), Password: strings.Repeat("p", 72)},
		&tokenbrokerv1.RevokeTokenRequest{Target: &tokenbrokerv1.RevokeTokenRequest_CartoToken{CartoToken: strings.Repeat("t", 4096)}},
	}
	for _, m := range ok {
		if err := checkLengths(m); err != nil {
			t.Errorf("%T at its bounds: %v", m, err)
		}
	}
}
