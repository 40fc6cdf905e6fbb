package redisstore

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fail-fast defaults, applied unless the URL sets them: an unreachable Redis
// is an error within about two seconds (one retry), never a long hang. The
// clients also honour context deadlines (ContextTimeoutEnabled), which bound
// the event feed's blocking reads (Watch).
const (
	defaultDialTimeout  = time.Second
	defaultReadTimeout  = time.Second
	defaultWriteTimeout = time.Second
	defaultMaxRetries   = 1
	// go-redis dials up to five times per connection by default; one dial
	// per attempt keeps the bound above.
	defaultDialerRetries = 1
)

// NewClient returns a client for a REDIS_URL:
//
//	redis://[user:pass@]host:port[/db][?options]           a single server
//	rediss://...                                             the same over TLS
//	redis://host:port?master_name=mymaster&addr=host2:port  Sentinel: the host
//	                                                         and every addr are
//	                                                         sentinels
//	redis://host:port?addr=host2:port&addr=host3:port        Cluster: an addr
//	                                                         without master_name
//
// Options are go-redis's (redis.ParseURL, ParseFailoverURL, ParseClusterURL):
// dial_timeout, read_timeout, write_timeout, max_retries and so on. For
// Sentinel the URL's user info authenticates to the sentinels, and the
// username and password options to the master. Errors name the problem,
// never the password. The caller closes the client.
func NewClient(redisURL string) (redis.UniversalClient, error) {
	if strings.TrimSpace(redisURL) == "" {
		return nil, errors.New("REDIS_URL is empty")
	}
	u, err := url.Parse(redisURL)
	if err != nil {
		return nil, parseError(redisURL, err)
	}
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return nil, fmt.Errorf("REDIS_URL: scheme %q is not redis:// or rediss://", u.Scheme)
	}
	q := u.Query()
	for _, a := range q["addr"] {
		if strings.Contains(a, "@") {
			return nil, errors.New("REDIS_URL: an addr option must be host:port (credentials go in the URL's user info)")
		}
	}
	// What go-redis reports is echoed, less any password the URL holds.
	var secrets []string
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, p)
	}
	secrets = append(secrets, q["password"]...)
	secrets = append(secrets, q["sentinel_password"]...)
	invalid := func(err error) error {
		msg := err.Error()
		for _, s := range secrets {
			if s != "" {
				msg = strings.ReplaceAll(msg, s, "xxxxx")
			}
		}
		return fmt.Errorf("REDIS_URL: %s", msg)
	}
	set := func(name string) bool { return q.Has(name) }

	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(redisURL)
		if err != nil {
			return nil, invalid(err)
		}
		failFast(set, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(o), nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(redisURL)
		if err != nil {
			return nil, invalid(err)
		}
		failFast(set, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, invalid(err)
		}
		failFast(set, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), nil
	}
}

// failFast applies the fail-fast defaults to the options the URL left unset.
func failFast(set func(string) bool, dial, read, write *time.Duration, retries, dialerRetries *int) {
	if !set("dial_timeout") {
		*dial = defaultDialTimeout
	}
	if !set("read_timeout") {
		*read = defaultReadTimeout
	}
	if !set("write_timeout") {
		*write = defaultWriteTimeout
	}
	if !set("max_retries") {
		*retries = defaultMaxRetries
	}
	if !set("dialer_retries") {
		*dialerRetries = defaultDialerRetries
	}
}

// parseError reports a URL that does not parse. url.Parse errors quote the
// URL, password included, so only the cause is kept, and not even that when
// the URL may hold user info, since the cause may quote part of it.
func parseError(raw string, err error) error {
	const form = "redis://[user:pass@]host:port[/db][?options]"
	var uerr *url.Error
	if strings.Contains(raw, "@") || !errors.As(err, &uerr) {
		return fmt.Errorf("REDIS_URL is not a valid URL (%s)", form)
	}
	return fmt.Errorf("REDIS_URL is not a valid URL (%s): %v", form, uerr.Err)
}
