package redistest

import (
	"syscall"
	"testing"
)

// A Cluster's and a Sentinel setup's processes, a hung one included, are
// all gone when the test that started them ends.
func TestFailoverSetupsCleanUp(t *testing.T) {
	if Missing(t) {
		t.Skip(missing)
	}
	var servers []*Server
	t.Run("cluster", func(t *testing.T) {
		c := StartCluster(t)
		servers = append(servers, c.Nodes...)
		master, _ := c.MasterOf(t, "k")
		if err := master.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		s := StartSentinel(t)
		servers = append(servers, s.Master, s.Replica)
		servers = append(servers, s.Sentinels...)
	})
	if len(servers) != 11 {
		t.Fatalf("%d servers started, want 11", len(servers))
	}
	for _, s := range servers {
		if s.cmd != nil {
			t.Errorf("%s still running", s.Addr)
		}
		if ping(s.Addr) == nil {
			t.Errorf("%s still answers", s.Addr)
		}
	}
}
