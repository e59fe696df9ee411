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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// SentinelMaster is the name the sentinels of StartSentinel monitor.
const SentinelMaster = "spendguard"

// Sentinel is a primary, one replica and three sentinels, all private
// processes of one test.
type Sentinel struct {
	t         testing.TB
	Primary   *Server
	Replica   *Server
	Sentinels []*Server
}

// StartSentinel starts a primary, a replica of it and three sentinels
// monitoring it (quorum 2, down after 1s, failover timeout 5s), and waits
// until the replica is in sync and every sentinel knows the replica and
// the other sentinels. extra are arguments of both data servers.
func StartSentinel(t testing.TB, extra ...string) *Sentinel {
	t.Helper()
	s := &Sentinel{t: t}
	s.Primary = Start(t, extra...)
	s.Replica = Start(t, append(append([]string{}, extra...), "--replicaof", "127.0.0.1", strconv.Itoa(s.Primary.Port()))...)
	waitFor(t, 10*time.Second, "the replica to sync", func() error {
		info, err := s.Replica.Client().Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return errors.New("master link down")
		}
		return nil
	})
	for range 3 {
		s.Sentinels = append(s.Sentinels, startSentinel(t, s.Primary.Port()))
	}
	waitFor(t, 20*time.Second, "the sentinels to discover each other and the replica", func() error {
		for _, sn := range s.Sentinels {
			m, err := sentinelMaster(sn)
			if err != nil {
				return err
			}
			if m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" {
				return fmt.Errorf("%s sees %s other sentinels, %s replicas", sn.Addr, m["num-other-sentinels"], m["num-slaves"])
			}
		}
		return nil
	})
	return s
}

// startSentinel runs redis-server in sentinel mode on a free port; a
// sentinel rewrites its configuration file, so it gets one of its own.
func startSentinel(t testing.TB, primaryPort int) *Server {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\n"+
		"sentinel parallel-syncs %s 1\n", SentinelMaster, primaryPort, SentinelMaster, SentinelMaster, SentinelMaster)
	require.NoError(t, os.WriteFile(conf, []byte(body), 0o600))
	return startServer(t, dir, []string{conf, "--sentinel", "--bind", "127.0.0.1", "--dir", dir})
}

func sentinelMaster(sn *Server) (map[string]string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Master(ctx, SentinelMaster).Result()
}

// SentinelAddrs are the addresses of the sentinels.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		out[i] = sn.Addr
	}
	return out
}

// MasterAddr is the primary the first sentinel that answers reports.
func (s *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1, DisableIdentity: true})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		hp, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		cancel()
		c.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel reports a primary: %v", last)
}

// KillPrimary kills the primary (SIGKILL); the sentinels notice after
// down-after-milliseconds and promote the replica.
func (s *Sentinel) KillPrimary() { s.Primary.Kill() }

// WaitFailover waits until every sentinel reports the replica as the
// primary, and the replica says it is one.
func (s *Sentinel) WaitFailover() {
	s.t.Helper()
	waitFor(s.t, 30*time.Second, "the sentinels to fail over to "+s.Replica.Addr, func() error {
		for _, sn := range s.Sentinels {
			m, err := sentinelMaster(sn)
			if err != nil {
				return err
			}
			if addr := net.JoinHostPort(m["ip"], m["port"]); addr != s.Replica.Addr {
				return fmt.Errorf("%s reports %s", sn.Addr, addr)
			}
		}
		role, err := s.Replica.Client().Do(context.Background(), "ROLE").Slice()
		if err != nil {
			return err
		}
		if len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("the replica's role is %v", role)
		}
		return nil
	})
}

// RestartOldPrimary starts the killed primary again and waits until the
// sentinels have made it a replica of the promoted one and it is in sync
// (the promoted primary counts it as an online replica), as an operator
// restoring the set's redundancy would.
func (s *Sentinel) RestartOldPrimary() {
	s.t.Helper()
	s.Primary.Restart()
	waitFor(s.t, 60*time.Second, "the old primary back as a replica of "+s.Replica.Addr, func() error {
		info, err := s.Replica.Client().Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
			return fmt.Errorf("replication of the promoted primary: %q", info)
		}
		return nil
	})
}

// Cluster is a Redis Cluster of three masters without replicas, private
// to one test.
type Cluster struct {
	t       testing.TB
	Masters []*Server
}

// StartCluster starts three cluster-enabled servers, gives each a third
// of the slots (CLUSTER ADDSLOTSRANGE), joins them (CLUSTER MEET) and
// waits until every one reports cluster_state:ok and knows all slots'
// owners. extra are arguments of every node.
func StartCluster(t testing.TB, extra ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for range 3 {
		dir := t.TempDir()
		args := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000"}, extra...)
		c.Masters = append(c.Masters, Start(t, args...))
	}
	ctx := context.Background()
	per := 16384 / len(c.Masters)
	for i, m := range c.Masters {
		first, last := i*per, (i+1)*per-1
		if i == len(c.Masters)-1 {
			last = 16383
		}
		require.NoError(t, m.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err())
	}
	for _, m := range c.Masters[1:] {
		require.NoError(t, m.Client().Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Masters[0].Port()).Err())
	}
	waitFor(t, 30*time.Second, "the cluster to be ok", func() error {
		for _, m := range c.Masters {
			info, err := m.Client().ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("%s: not ok yet", m.Addr)
			}
			slots, err := m.Client().ClusterSlots(ctx).Result()
			if err != nil {
				return err
			}
			if len(slots) != len(c.Masters) {
				return fmt.Errorf("%s knows %d slot ranges", m.Addr, len(slots))
			}
		}
		return nil
	})
	return c
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Masters))
	for i, m := range c.Masters {
		out[i] = m.Addr
	}
	return out
}

// Client returns a cluster client of the nodes, closed when the test
// ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true})
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// waitFor polls cond until it returns nil, failing the test with what
// after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
