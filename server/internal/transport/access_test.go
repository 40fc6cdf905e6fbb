package transport

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
)

// serviceMethods are the full names of every method of the service, unary
// and streaming, as the generated descriptor lists them.
func serviceMethods(desc grpc.ServiceDesc) (unary, streams []string) {
	for _, m := range desc.Methods {
		unary = append(unary, "/"+desc.ServiceName+"/"+m.MethodName)
	}
	for _, s := range desc.Streams {
		streams = append(streams, "/"+desc.ServiceName+"/"+s.StreamName)
	}
	return unary, streams
}

// Every method of the service has exactly one row of the access table, with
// a known access, and no row names a method the service lacks.
func TestAccessTableCoversTheService(t *testing.T) {
	unary, streams := serviceMethods(tokenbrokerv1.TokenBroker_ServiceDesc)
	methods := append(unary, streams...)
	rows := map[string]int{}
	for _, row := range access {
		rows[row.method]++
		if !slices.Contains([]Access{Public, Authenticated, Admin, Optional}, row.access) {
			t.Errorf("%s: access %v", row.method, row.access)
		}
		if !slices.Contains(methods, row.method) {
			t.Errorf("the access table has a row for %s, which the service does not have", row.method)
		}
	}
	for _, m := range methods {
		if rows[m] != 1 {
			t.Errorf("%s has %d rows in the access table, want 1", m, rows[m])
		}
	}
}

func TestAccessOf(t *testing.T) {
	tests := []struct {
		method string
		want   Access
	}{
		{tokenbrokerv1.TokenBroker_Login_FullMethodName, Public},
		{tokenbrokerv1.TokenBroker_ListTokens_FullMethodName, Admin},
		{healthpb.Health_Check_FullMethodName, Public},
		{healthpb.Health_Watch_FullMethodName, Public},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Public},
		{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Public},
		// Not in the table: the chain fails closed.
		{"/tokenbroker.v1.TokenBroker/Unknown", Authenticated},
		{"/tokenbroker.v1.TokenBroker/login", Authenticated},
		{"", Authenticated},
	}
	for _, tt := range tests {
		if got := AccessOf(tt.method); got != tt.want {
			t.Errorf("AccessOf(%q) = %v, want %v", tt.method, got, tt.want)
		}
	}
}

// The gateway's wrapper runs every method of the service through the chain,
// under the method's own name: a method it lacked would reach the service's
// Unimplemented stub without the chain, and one under a wrong name would be
// authenticated by the wrong row of the access table.
func TestGatewayWrapperCoversTheService(t *testing.T) {
	unary, streams := serviceMethods(tokenbrokerv1.TokenBroker_ServiceDesc)
	if len(streams) > 0 {
		t.Fatalf("the service has streams %v: the gateway's wrapper chains unary calls only", streams)
	}
	for i, m := range tokenbrokerv1.TokenBroker_ServiceDesc.Methods {
		var chained []string
		svc := intercepted{next: fakeService{}, chain: func(_ context.Context, _ any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
			chained = append(chained, info.FullMethod)
			return nil, status.Error(codes.Aborted, "stopped by the test")
		}}
		_, err := m.Handler(svc, context.Background(), func(any) error { return nil }, nil)
		if status.Code(err) != codes.Aborted || !slices.Equal(chained, []string{unary[i]}) {
			t.Errorf("%s through the gateway's wrapper: chained as %q, %v", unary[i], chained, err)
		}
	}
}
