package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Failover tests kill a master and measure how long clients take to follow
// its replacement. Every wait below polls what the servers report, with a
// deadline: a replication link, cluster state or role has no event to wait on.

// setupTimeout bounds each step of starting a Cluster or Sentinel setup.
const setupTimeout = 20 * time.Second

// poll is how often a wait looks at what the servers report.
const poll = 10 * time.Millisecond

// waitFor calls check until it returns nil, and fails t if that has not
// happened within d, with check's last error.
func waitFor(t testing.TB, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s: not within %v: %v", what, d, err)
		}
		time.Sleep(poll)
	}
}

// startNode starts s on a port pick chooses, stopped when the test ends.
func startNode(t testing.TB, s *Server, pick func() (int, error)) *Server {
	t.Helper()
	if Missing(t) {
		t.Skip(missing)
	}
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	if _, err := newServer(s, pick); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Do runs one command on this server alone, on a connection of its own.
func (s *Server) Do(ctx context.Context, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, PoolSize: 1, Protocol: 2, DisableIdentity: true,
	})
	defer c.Close()
	return c.Do(ctx, args...).Result()
}

// info returns the fields of an INFO section.
func (s *Server) info(ctx context.Context, section string) (map[string]string, error) {
	v, err := s.Do(ctx, "info", section)
	if err != nil {
		return nil, err
	}
	text, _ := v.(string)
	fields := map[string]string{}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// replicationUp reports nil once s reports its replication link up: a
// master with want connected replicas, or a replica whose link to its
// master is up.
func (s *Server) replicationUp(ctx context.Context, want int) error {
	f, err := s.info(ctx, "replication")
	if err != nil {
		return err
	}
	switch f["role"] {
	case "master":
		if f["connected_slaves"] != strconv.Itoa(want) {
			return fmt.Errorf("%s: master with %s connected replicas, want %d", s.Addr, f["connected_slaves"], want)
		}
	case "slave":
		if f["master_link_status"] != "up" {
			return fmt.Errorf("%s: replica with its link %s", s.Addr, f["master_link_status"])
		}
	default:
		return fmt.Errorf("%s: role %q", s.Addr, f["role"])
	}
	return nil
}

// WaitMaster waits until s reports itself a master (INFO replication
// role:master), as a promoted replica does, and returns when it first saw
// that; it fails t after within.
func (s *Server) WaitMaster(t testing.TB, within time.Duration) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, within, s.Addr+" promoted to master", func() error {
		f, err := s.info(context.Background(), "replication")
		if err != nil {
			return err
		}
		if f["role"] != "master" {
			return fmt.Errorf("role %s", f["role"])
		}
		at = time.Now()
		return nil
	})
	return at
}

// failMaster stops master by sig (SIGKILL: a crash; SIGSTOP: a hang, with
// connections left open) once its replica has acknowledged every write it
// took (WAIT), so that the replica can take over with all of them. A
// stopped master is killed when the test ends.
func failMaster(t testing.TB, master *Server, sig syscall.Signal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := master.Do(ctx, "wait", 1, 5000)
	if err != nil {
		t.Fatalf("redistest: WAIT on %s: %v", master.Addr, err)
	}
	if n != int64(1) {
		t.Fatalf("redistest: the replica of %s did not acknowledge its writes (WAIT: %v)", master.Addr, n)
	}
	if sig == syscall.SIGKILL {
		master.Kill()
		return
	}
	if err := master.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Cluster is a Redis Cluster of three masters, each with one replica, on
// loopback, with a node timeout of 2 s, so that a killed master's replica is
// promoted within seconds.
type Cluster struct {
	// Nodes as started: Nodes[i] served the i-th third of the slots and
	// Nodes[i+3] was its replica. Failovers change the roles.
	Nodes []*Server
	// URL names every node, in the form redisstore.NewClient takes.
	URL string
}

// ClusterNodeTimeout is the Cluster's cluster-node-timeout: a master that
// does not answer for this long is failed over.
const ClusterNodeTimeout = 2 * time.Second

// StartCluster starts a Cluster, waits until every node reports the cluster
// ok and its replication link up, and stops it when the test ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range 6 {
		c.Nodes = append(c.Nodes, startNode(t, &Server{args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout / time.Millisecond)),
			"--repl-diskless-sync-delay", "0",
		}}, clusterPort))
	}
	ctx := context.Background()
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		v, err := n.Do(ctx, "cluster", "myid")
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = v.(string)
		if i > 0 {
			if _, err := c.Nodes[0].Do(ctx, "cluster", "meet", "127.0.0.1", n.port); err != nil {
				t.Fatal(err)
			}
		}
	}
	const slots = 16384
	for i := range 3 {
		args := []any{"cluster", "addslots"}
		for slot := i * slots / 3; slot < (i+1)*slots/3; slot++ {
			args = append(args, slot)
		}
		if _, err := c.Nodes[i].Do(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	// A replica can follow its master once it knows it.
	for i := 3; i < 6; i++ {
		waitFor(t, setupTimeout, c.Nodes[i].Addr+" replicates "+c.Nodes[i-3].Addr, func() error {
			_, err := c.Nodes[i].Do(ctx, "cluster", "replicate", ids[i-3])
			return err
		})
	}
	waitFor(t, setupTimeout, "cluster formed", func() error {
		for i, n := range c.Nodes {
			if err := c.ready(ctx, n, i < 3); err != nil {
				return err
			}
		}
		return nil
	})
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = "addr=" + n.Addr
	}
	c.URL = "redis://" + c.Nodes[0].Addr + "?" + strings.Join(addrs[1:], "&")
	return c
}

// ready reports nil once n sees the cluster ok, every node a known master
// or replica and not failing, each slot range with its replica, and its own
// replication link up.
func (c *Cluster) ready(ctx context.Context, n *Server, master bool) error {
	v, err := n.Do(ctx, "cluster", "info")
	if err != nil {
		return err
	}
	if info, _ := v.(string); !strings.Contains(info, "cluster_state:ok") {
		return fmt.Errorf("%s: cluster not ok", n.Addr)
	}
	v, err = n.Do(ctx, "cluster", "nodes")
	if err != nil {
		return err
	}
	var masters, replicas int
	for line := range strings.Lines(strings.TrimSpace(v.(string))) {
		f := strings.Fields(line)
		if len(f) < 3 || strings.Contains(f[2], "fail") || strings.Contains(f[2], "handshake") || strings.Contains(f[2], "noaddr") {
			return fmt.Errorf("%s sees node %q", n.Addr, line)
		}
		switch {
		case strings.Contains(f[2], "master"):
			masters++
		case strings.Contains(f[2], "slave"):
			replicas++
		}
	}
	if masters != 3 || replicas != 3 {
		return fmt.Errorf("%s sees %d masters and %d replicas", n.Addr, masters, replicas)
	}
	// What clients (and MasterOf) read lags a little behind CLUSTER NODES.
	v, err = n.Do(ctx, "cluster", "slots")
	if err != nil {
		return err
	}
	ranges, _ := v.([]any)
	for _, r := range ranges {
		if r, _ := r.([]any); len(r) != 4 { // start, end, master, replica
			return fmt.Errorf("%s lists a slot range without its replica: %v", n.Addr, r)
		}
	}
	if len(ranges) != 3 {
		return fmt.Errorf("%s lists %d slot ranges", n.Addr, len(ranges))
	}
	want := 0
	if master {
		want = 1
	}
	return n.replicationUp(ctx, want)
}

// clusterPort picks a free port whose cluster bus port (port+10000) is free
// too.
func clusterPort() (int, error) {
	for range 100 {
		p, err := freePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, errors.New("no free port with a free cluster bus port")
}

// MasterOf returns the node serving key's slot and its replica, as a live
// node's CLUSTER SLOTS reports them.
func (c *Cluster) MasterOf(t testing.TB, key string) (master, replica *Server) {
	t.Helper()
	ctx := context.Background()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		var ranges []redis.ClusterSlot
		if err == nil {
			ranges, err = cl.ClusterSlots(ctx).Result()
		}
		cl.Close()
		if err != nil {
			continue
		}
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) == 2 {
				return c.node(t, r.Nodes[0].Addr), c.node(t, r.Nodes[1].Addr)
			}
		}
	}
	t.Fatalf("redistest: no live node knows a master and replica for %q", key)
	return nil, nil
}

func (c *Cluster) node(t testing.TB, addr string) *Server {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	t.Fatalf("redistest: %s is not a node of the cluster", addr)
	return nil
}

// FailMasterOf stops the master serving key's slot by sig (SIGKILL: a
// crash; SIGSTOP: a hang), once its replica has every write, and returns
// that replica, which the cluster promotes a few seconds later
// (Server.WaitMaster).
func (c *Cluster) FailMasterOf(t testing.TB, key string, sig syscall.Signal) (replica *Server) {
	t.Helper()
	master, replica := c.MasterOf(t, key)
	failMaster(t, master, sig)
	return replica
}

// Sentinel is one master with one replica, watched by three sentinels
// (quorum 2) that fail the master over 1 s after it stops answering.
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []*Server
	// URL names every sentinel and the master name, in the form
	// redisstore.NewClient takes.
	URL string
}

// SentinelMaster is the master name the sentinels monitor.
const SentinelMaster = "mymaster"

// StartSentinel starts a Sentinel setup, waits until the replica's link is
// up and every sentinel knows the replica and the other sentinels, and stops
// it when the test ends.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{Master: startNode(t, &Server{}, freePort)}
	s.Replica = startNode(t, &Server{args: []string{
		"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.port), "--repl-diskless-sync-delay", "0",
	}}, freePort)
	ctx := context.Background()
	waitFor(t, setupTimeout, "replica in sync", func() error {
		return errors.Join(s.Master.replicationUp(ctx, 1), s.Replica.replicationUp(ctx, 0))
	})
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 3000\n", SentinelMaster, s.Master.port)
	var addrs []string
	for range 3 {
		dir := t.TempDir()
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		n := startNode(t, &Server{dir: dir, conf: path, args: []string{"--sentinel"}}, freePort)
		s.Sentinels = append(s.Sentinels, n)
		addrs = append(addrs, "addr="+n.Addr)
	}
	waitFor(t, setupTimeout, "sentinels ready", func() error {
		for _, n := range s.Sentinels {
			for _, q := range []struct {
				cmd  string
				want int
			}{{"replicas", 1}, {"sentinels", 2}} {
				v, err := n.Do(ctx, "sentinel", q.cmd, SentinelMaster)
				if err != nil {
					return err
				}
				if got, _ := v.([]any); len(got) != q.want {
					return fmt.Errorf("sentinel %s knows %d %s, want %d", n.Addr, len(got), q.cmd, q.want)
				}
			}
		}
		return nil
	})
	s.URL = "redis://" + s.Sentinels[0].Addr + "?master_name=" + SentinelMaster + "&" + strings.Join(addrs[1:], "&")
	return s
}

// StartLoneSentinel starts one sentinel that monitors no master, and stops
// it when the test ends.
func StartLoneSentinel(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sentinel.conf") // a sentinel rewrites it
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return startNode(t, &Server{dir: dir, conf: path, args: []string{"--sentinel"}}, freePort)
}

// FailMaster stops the master by sig (SIGKILL: a crash; SIGSTOP: a hang)
// once the replica has every write, and returns the replica, which the
// sentinels promote a few seconds later (Server.WaitMaster).
func (s *Sentinel) FailMaster(t testing.TB, sig syscall.Signal) (replica *Server) {
	t.Helper()
	failMaster(t, s.Master, sig)
	return s.Replica
}
