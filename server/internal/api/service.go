// Package api adapts the broker to the tokenbroker.v1 gRPC contract: it
// converts messages, reads the caller from the context, and maps domain errors
// to status codes in one place (Status). The REST gateway serves this same
// implementation, so both transports answer alike.
package api

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
)

// PublicMethods need no caller identity.
var PublicMethods = []string{tokenbrokerv1.TokenBroker_Login_FullMethodName}

// Service implements tokenbrokerv1.TokenBrokerServer.
type Service struct {
	tokenbrokerv1.UnimplementedTokenBrokerServer
	broker *broker.Broker
	log    *slog.Logger
}

// NewService returns the gRPC service of b.
func NewService(b *broker.Broker, log *slog.Logger) *Service {
	return &Service{broker: b, log: log}
}

// Login implements tokenbrokerv1.TokenBrokerServer.
func (s *Service) Login(ctx context.Context, req *tokenbrokerv1.LoginRequest) (*tokenbrokerv1.LoginResponse, error) {
	sess, err := s.broker.Login(ctx, req.GetUsername(), req.GetPassword())
	if err != nil {
		return nil, Status(ctx, s.log, err)
	}
	return &tokenbrokerv1.LoginResponse{
		Token:     sess.Token,
		ExpiresAt: timestamppb.New(sess.ExpiresAt),
		Group:     sess.Group,
	}, nil
}

// IssueCartoToken implements tokenbrokerv1.TokenBrokerServer.
func (s *Service) IssueCartoToken(ctx context.Context, req *tokenbrokerv1.IssueCartoTokenRequest) (*tokenbrokerv1.IssueCartoTokenResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	t, err := s.broker.IssueCartoToken(ctx, p, req.GetGroup())
	if err != nil {
		return nil, Status(ctx, s.log, err)
	}
	grants := make([]*tokenbrokerv1.Grant, len(t.Policy.Grants))
	for i, g := range t.Policy.Grants {
		grants[i] = &tokenbrokerv1.Grant{ConnectionName: g.Connection, Source: g.Source}
	}
	return &tokenbrokerv1.IssueCartoTokenResponse{
		Token:       t.Token,
		ExpiresAt:   timestamppb.New(t.ExpiresAt),
		Group:       t.Policy.Group,
		City:        t.Policy.Group,
		Grants:      grants,
		AllowedApis: t.Policy.AllowedAPIs,
		Referers:    t.Policy.Referers,
		ApiBaseUrl:  t.APIBaseURL,
	}, nil
}

// RevokeToken implements tokenbrokerv1.TokenBrokerServer.
func (s *Service) RevokeToken(ctx context.Context, req *tokenbrokerv1.RevokeTokenRequest) (*tokenbrokerv1.RevokeTokenResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	var until time.Time
	switch t := req.GetTarget().(type) {
	case *tokenbrokerv1.RevokeTokenRequest_Session:
		if !t.Session {
			return nil, status.Error(codes.InvalidArgument, "session must be true when given")
		}
		until, err = s.broker.RevokeSession(ctx, p)
	case *tokenbrokerv1.RevokeTokenRequest_CartoToken:
		until, err = s.broker.RevokeCartoToken(ctx, p, t.CartoToken)
	default:
		return nil, status.Error(codes.InvalidArgument, "a target is required: session or carto_token")
	}
	if err != nil {
		return nil, Status(ctx, s.log, err)
	}
	return &tokenbrokerv1.RevokeTokenResponse{RevokedUntil: timestamppb.New(until)}, nil
}

// principal returns the authenticated caller. The auth interceptor guarantees
// one on every non-public method; its absence is a wiring bug, answered
// without detail.
func principal(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Principal{}, status.Error(codes.Unauthenticated, "authentication required")
	}
	return p, nil
}
