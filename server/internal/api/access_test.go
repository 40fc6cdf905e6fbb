package api

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/transport"
)

// The service holds to transport's access table where the chain leaves it
// to the service: a method that is not public or optional answers
// UNAUTHENTICATED when no caller reached it, the others do not need one, and an admin method
// refuses an authenticated caller who is not an admin.
func TestServiceHoldsToTheAccessTable(t *testing.T) {
	svc := NewService(Config{Broker: broker.New(broker.Config{}), Logger: slog.New(slog.DiscardHandler)})
	user := auth.WithPrincipal(context.Background(), auth.Principal{Kind: auth.KindUser, Subject: "u", Group: "BOSTON", SessionID: "s"})
	desc := tokenbrokerv1.TokenBroker_ServiceDesc
	emptyRequest := func(any) error { return nil }
	for _, m := range desc.Methods {
		method := "/" + desc.ServiceName + "/" + m.MethodName
		access := transport.AccessOf(method)
		t.Run(m.MethodName, func(t *testing.T) {
			_, err := m.Handler(svc, context.Background(), emptyRequest, nil)
			// Public and Optional methods run without a caller (an
			// Optional one then serves what is public); the others need one.
			needsCaller := access != transport.Public && access != transport.Optional
			if code := status.Code(err); (code == codes.Unauthenticated) != needsCaller {
				t.Errorf("%v method called without a caller: %v", access, err)
			}
			if access == transport.Admin {
				if _, err := m.Handler(svc, user, emptyRequest, nil); status.Code(err) != codes.PermissionDenied {
					t.Errorf("admin method called by a user who is not an admin: %v", err)
				}
			}
		})
	}
}
