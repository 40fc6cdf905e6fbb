package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/internal/audit"
	"github.com/tokenbroker/tokenbroker/server/internal/auth"
	"github.com/tokenbroker/tokenbroker/server/internal/broker"
	"github.com/tokenbroker/tokenbroker/server/internal/namedquery"
	"github.com/tokenbroker/tokenbroker/server/internal/store"
)

// Service implements tokenbrokerv1.TokenBrokerServer.
type Service struct {
	tokenbrokerv1.UnimplementedTokenBrokerServer
	broker *broker.Broker
	log    *slog.Logger
	audit  *audit.Logger
	rec    Recorder

	// responses holds the answer built for each CARTO token handed out:
	// every hit of a token gets the same one (read-only once built), so a
	// hit allocates no message. Bounded by clearing it when full.
	responses     sync.Map // token -> *tokenbrokerv1.IssueCartoTokenResponse
	responseCount atomic.Int64
}

// maxResponses bounds the answers kept: about the live tokens of a broker.
const maxResponses = 10_000

// Recorder counts what the service does, for metrics.
type Recorder interface {
	Issued(minted bool)
	Login(outcome string)
	Revoked(target, outcome string)
}

// Config configures the Service.
type Config struct {
	Broker *broker.Broker
	// Logger receives what callers are not told: the causes of INTERNAL and
	// UNAVAILABLE answers.
	Logger *slog.Logger
	// Audit receives an event per call. Nil: none.
	Audit *audit.Logger
	// Recorder counts logins, issuances and revocations. Nil: none.
	Recorder Recorder
}

// NewService returns the gRPC service of cfg.Broker.
func NewService(cfg Config) *Service {
	auditLog := cfg.Audit
	if auditLog == nil {
		auditLog = audit.Discard()
	}
	return &Service{broker: cfg.Broker, log: cfg.Logger, audit: auditLog, rec: cfg.Recorder}
}

// Status is Status with the service's logger: the error mapping the
// transport's chain is given for the errors of authentication.
func (s *Service) Status(ctx context.Context, err error) error {
	return Status(ctx, s.log, err)
}

// Login implements tokenbrokerv1.TokenBrokerServer.
func (s *Service) Login(ctx context.Context, req *tokenbrokerv1.LoginRequest) (*tokenbrokerv1.LoginResponse, error) {
	addr := clientAddr(ctx)
	if err := checkLengths(req); err != nil {
		// The audit log keeps a bounded prefix of the username.
		return nil, s.fail(ctx, audit.Event{Action: audit.ActionLogin, Kind: string(auth.KindUser), Subject: req.GetUsername(), Addr: addr}, err)
	}
	sess, err := s.broker.Login(ctx, req.GetUsername(), req.GetPassword(), addr)
	ev := audit.Event{Action: audit.ActionLogin, Kind: string(auth.KindUser), Subject: auth.NormalizeUsername(req.GetUsername()), Group: sess.Group, Addr: addr}
	if err != nil {
		if errors.Is(err, auth.ErrBusy) {
			ev.Detail = "shed" // not checked at all: the broker was busy
		}
		return nil, s.fail(ctx, ev, err)
	}
	s.ok(ctx, ev)
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
	if err := checkLengths(req); err != nil {
		return nil, s.fail(ctx, s.event(ctx, audit.ActionIssue, p), err)
	}
	t, err := s.broker.IssueCartoToken(ctx, p, req.GetGroup())
	ev := s.event(ctx, audit.ActionIssue, p)
	if req.GetGroup() != "" {
		ev.Group = req.GetGroup()
	}
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Group, ev.Token, ev.Detail = t.Policy.Group, audit.Fingerprint(t.Token), "hit"
	if t.Minted {
		ev.Detail = "mint"
	}
	s.ok(ctx, ev)
	return s.response(t), nil
}

// response is the answer for an issued token, built once per token.
func (s *Service) response(t broker.IssuedToken) *tokenbrokerv1.IssueCartoTokenResponse {
	if r, ok := s.responses.Load(t.Token); ok {
		return r.(*tokenbrokerv1.IssueCartoTokenResponse)
	}
	grants := make([]*tokenbrokerv1.Grant, len(t.Policy.Grants))
	for i, g := range t.Policy.Grants {
		grants[i] = &tokenbrokerv1.Grant{ConnectionName: g.Connection, Source: g.Source}
	}
	r := &tokenbrokerv1.IssueCartoTokenResponse{
		Token:       t.Token,
		ExpiresAt:   timestamppb.New(t.ExpiresAt),
		Group:       t.Policy.Group,
		City:        t.Policy.Group,
		Grants:      grants,
		AllowedApis: t.Policy.AllowedAPIs,
		Referers:    t.Policy.Referers,
		ApiBaseUrl:  t.APIBaseURL,
	}
	if s.responseCount.Add(1) > maxResponses {
		s.responses.Clear()
		s.responseCount.Store(1)
	}
	s.responses.Store(t.Token, r)
	return r
}

// RevokeToken implements tokenbrokerv1.TokenBrokerServer.
func (s *Service) RevokeToken(ctx context.Context, req *tokenbrokerv1.RevokeTokenRequest) (*tokenbrokerv1.RevokeTokenResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkLengths(req); err != nil {
		return nil, s.fail(ctx, s.event(ctx, audit.ActionRevoke, p), err)
	}
	ev := s.event(ctx, audit.ActionRevoke, p)
	var until time.Time
	count := 0
	switch t := req.GetTarget().(type) {
	case *tokenbrokerv1.RevokeTokenRequest_Session:
		ev.Detail = "session"
		if !t.Session {
			return nil, s.fail(ctx, ev, status.Error(codes.InvalidArgument, "session must be true when given"))
		}
		until, err = s.broker.RevokeSession(ctx, p)
	case *tokenbrokerv1.RevokeTokenRequest_CartoToken:
		ev.Detail, ev.Token = "carto_token", audit.Fingerprint(t.CartoToken)
		var e store.Entry
		if e, err = s.broker.RevokeCartoToken(ctx, p, t.CartoToken); err == nil {
			until, count, ev.Group = e.ExpiresAt, 1, e.Key.Group
		}
	case *tokenbrokerv1.RevokeTokenRequest_Group:
		ev.Detail, ev.Group = "group", t.Group
		count, until, err = s.broker.RevokeGroup(ctx, p, t.Group)
	default:
		return nil, s.fail(ctx, ev, status.Error(codes.InvalidArgument, "a target is required: session, carto_token or group"))
	}
	ev.Count = count
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	s.ok(ctx, ev)
	return &tokenbrokerv1.RevokeTokenResponse{RevokedUntil: timestamppb.New(until), RevokedCount: int32(count)}, nil
}

// ListTokens implements tokenbrokerv1.TokenBrokerServer.
func (s *Service) ListTokens(ctx context.Context, req *tokenbrokerv1.ListTokensRequest) (*tokenbrokerv1.ListTokensResponse, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkLengths(req); err != nil {
		return nil, s.fail(ctx, s.event(ctx, audit.ActionList, p), err)
	}
	ev := s.event(ctx, audit.ActionList, p)
	ev.Group = req.GetGroup()
	held, err := s.broker.ListTokens(ctx, p, req.GetGroup())
	if err != nil {
		return nil, s.fail(ctx, ev, err)
	}
	ev.Count = len(held)
	s.ok(ctx, ev)
	out := &tokenbrokerv1.ListTokensResponse{Tokens: make([]*tokenbrokerv1.HeldToken, len(held))}
	for i, h := range held {
		out.Tokens[i] = &tokenbrokerv1.HeldToken{
			Group:       namedquery.DescribeKey(h.Key.Group), // a query audience's as queries/<group>
			MaskedToken: mask(h.Token),
			TokenId:     audit.Fingerprint(h.Token),
			Policy:      h.Key.PolicyHash[:min(12, len(h.Key.PolicyHash))],
			Current:     h.Current,
			CreatedAt:   timestamppb.New(h.CreatedAt),
			ExpiresAt:   timestamppb.New(h.ExpiresAt),
		}
	}
	return out, nil
}

// mask keeps a token's first and last 4 characters; a token of 12
// characters or fewer is masked whole.
func mask(tok string) string {
	if len(tok) <= 12 {
		return "…"
	}
	return tok[:4] + "…" + tok[len(tok)-4:]
}

// event starts the audit event of a call by p.
func (s *Service) event(ctx context.Context, action audit.Action, p auth.Principal) audit.Event {
	return audit.Event{Action: action, Kind: string(p.Kind), Subject: p.Subject, Group: p.Group, Addr: clientAddr(ctx)}
}

func (s *Service) ok(ctx context.Context, ev audit.Event) {
	ev.Outcome, ev.Code = audit.OutcomeSuccess, codes.OK.String()
	s.record(ctx, ev)
}

// record writes the audit event and counts it.
func (s *Service) record(ctx context.Context, ev audit.Event) {
	s.audit.Log(ctx, ev)
	if s.rec == nil {
		return
	}
	switch ev.Action {
	case audit.ActionLogin:
		outcome := string(ev.Outcome)
		if ev.Code == codes.ResourceExhausted.String() {
			outcome = "locked_out"
			if ev.Detail == "shed" {
				outcome = "shed"
			}
		}
		s.rec.Login(outcome)
	case audit.ActionIssue:
		if ev.Outcome == audit.OutcomeSuccess {
			s.rec.Issued(ev.Detail == "mint")
		}
	case audit.ActionRevoke:
		s.rec.Revoked(ev.Detail, string(ev.Outcome))
	}
}

// fail maps err to its status, audits the outcome, and returns the status.
func (s *Service) fail(ctx context.Context, ev audit.Event, err error) error {
	st := Status(ctx, s.log, err)
	code := status.Code(st)
	ev.Code = code.String()
	switch code {
	case codes.Unauthenticated:
		ev.Outcome = audit.OutcomeFailure
	case codes.PermissionDenied, codes.NotFound, codes.ResourceExhausted:
		ev.Outcome = audit.OutcomeDenied
	case codes.InvalidArgument:
		ev.Outcome = audit.OutcomeInvalid
	default:
		ev.Outcome = audit.OutcomeError
	}
	s.record(ctx, ev)
	return st
}

// clientAddr is the caller's network address: the gRPC peer, which the
// REST gateway sets to the HTTP client's address.
func clientAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// principal returns the authenticated caller. The transport's chain
// authenticates every method its access table does not make public; a
// missing caller is a wiring bug, answered without detail.
func principal(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Principal{}, status.Error(codes.Unauthenticated, "authentication required")
	}
	return p, nil
}
