package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenbroker/tokenbroker/server/internal/store/redisstore"
)

func TestNewClient(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		c := newClient(t, "redis://user:pw@localhost:6390/2")
		rc, ok := c.(*redis.Client)
		if !ok {
			t.Fatalf("got %T, want *redis.Client", c)
		}
		o := rc.Options()
		if o.Addr != "localhost:6390" || o.DB != 2 || o.Username != "user" || o.Password != "pw" || o.TLSConfig != nil {
			t.Fatalf("options %+v", o)
		}
		if o.DialTimeout != time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != time.Second || o.MaxRetries != 1 || o.DialerRetries != 1 || !o.ContextTimeoutEnabled {
			t.Fatalf("fail-fast defaults not applied: dial %v read %v write %v retries %d dialer retries %d context deadlines %v",
				o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries, o.DialerRetries, o.ContextTimeoutEnabled)
		}
	})
	t.Run("URL settings win", func(t *testing.T) {
		c := newClient(t, "redis://localhost:6390?dial_timeout=3s&read_timeout=4s&write_timeout=5s&max_retries=2")
		o := c.(*redis.Client).Options()
		if o.DialTimeout != 3*time.Second || o.ReadTimeout != 4*time.Second || o.WriteTimeout != 5*time.Second || o.MaxRetries != 2 {
			t.Fatalf("dial %v read %v write %v retries %d", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries)
		}
	})
	t.Run("tls", func(t *testing.T) {
		c := newClient(t, "rediss://localhost:6390")
		if o := c.(*redis.Client).Options(); o.TLSConfig == nil || o.TLSConfig.ServerName != "localhost" {
			t.Fatalf("no TLS: %+v", o.TLSConfig)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		c := newClient(t, "redis://:pw@sentinel1:26379?master_name=mymaster&addr=sentinel2:26379")
		rc, ok := c.(*redis.Client)
		if !ok {
			t.Fatalf("got %T, want a failover *redis.Client", c)
		}
		if o := rc.Options(); o.Addr != "FailoverClient" || o.DialTimeout != time.Second || o.MaxRetries != 1 || !o.ContextTimeoutEnabled {
			t.Fatalf("not a failover client with fail-fast defaults: addr %q dial %v retries %d", o.Addr, o.DialTimeout, o.MaxRetries)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := newClient(t, "redis://node1:7000?addr=node2:7001&addr=node3:7002")
		cc, ok := c.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("got %T, want *redis.ClusterClient", c)
		}
		o := cc.Options()
		if strings.Join(o.Addrs, ",") != "node1:7000,node2:7001,node3:7002" {
			t.Fatalf("addrs %v", o.Addrs)
		}
		if o.DialTimeout != time.Second || o.ReadTimeout != time.Second || o.WriteTimeout != time.Second || o.MaxRetries != 1 || !o.ContextTimeoutEnabled {
			t.Fatalf("fail-fast defaults not applied: %+v", o)
		}
	})
}

func TestNewClientErrors(t *testing.T) {
	const pw = "s3cr3t-pw"
	for _, u := range []string{
		"",
		"localhost:6379",
		"http://user:" + pw + "@localhost:6379",
		"redis://user:" + pw + "@localhost:port",
		"redis://user:" + pw + "%zz@localhost:6379",
		"redis://user:" + pw + "/x@localhost:6379",
		"redis://user:" + pw + "@localhost:6379/notadb",
		"redis://user:" + pw + "@localhost:6379?bogus=1",
		"redis://user:" + pw + "@localhost:6379?dial_timeout=" + pw,
		"redis://user:" + pw + "@localhost:6379?addr=nohostport",
		"redis://user:" + pw + "@localhost:6379?addr=u:" + pw + "@h:1",
		"redis://localhost:26379?master_name=m&password=" + pw + "&bogus=" + pw,
		"redis://user:" + pw + "@localhost:26379?master_name=m&db=x",
	} {
		c, err := redisstore.NewClient(u)
		if err == nil {
			c.Close()
			t.Errorf("NewClient(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), pw) || !strings.HasPrefix(err.Error(), "REDIS_URL") {
			t.Errorf("NewClient error %q: want it to start with REDIS_URL and not hold the password", err)
		}
		t.Logf("%v", err)
	}
}
