package main

import (
	"context"
	"time"

	tokenbrokerv1 "github.com/tokenbroker/tokenbroker/gen/tokenbroker/v1"
	"github.com/tokenbroker/tokenbroker/server/brokertest"
)

// logins measures logins per second at the demo users' bcrypt cost (10),
// with more callers than cores: bcrypt is bounded to one per core, so the
// rate is what a login flood gets.
func logins(ctx context.Context, o options) (result, error) {
	// No lockout: this measures bcrypt, not the login limits.
	b, stop, err := startBroker(brokertest.Env(map[string]string{"LOGIN_MAX_USER_FAILURES": "0", "LOGIN_MAX_ADDR_FAILURES": "0"}))
	if err != nil {
		return result{}, err
	}
	defer stop()
	conns, err := dial(b.GRPCAddr, 1)
	if err != nil {
		return result{}, err
	}
	defer closeAll(conns)
	c := tokenbrokerv1.NewTokenBrokerClient(conns[0])
	r := drive(ctx, "login", 2*gomaxprocs(), min(o.duration, 5*time.Second), func(ctx context.Context, _ int) error {
		_, err := c.Login(ctx, &tokenbrokerv1.LoginRequest{Username: "user.boston@acme.com", Password: "boston"})
		return err
	})
	r.cost = 10
	return r, nil
}
