package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
)

// withCap is minimal with the tenant-daily hard cap set to usd.
func withCap(usd string) string {
	return strings.Replace(minimal, "hard_usd: 10", "hard_usd: "+usd, 1)
}

// reloadRig is a Reloader on a file in a temporary directory, with Run
// going in the background, and every configuration it installed.
type reloadRig struct {
	t       *testing.T
	path    string
	r       *Reloader
	events  chan struct{}
	mu      sync.Mutex
	applied []*Compiled
	stop    func()
}

const (
	testDebounce = time.Second
	testPoll     = time.Minute
)

func newReloadRig(t *testing.T, content string) *reloadRig {
	rig := &reloadRig{t: t, path: filepath.Join(t.TempDir(), "spendguard.yaml"), events: make(chan struct{})}
	rig.write(content)
	var err error
	rig.r, err = NewReloader(rig.path, ReloaderOptions{Loader: Loader{LookupEnv: env(nil)}})
	require.NoError(t, err)
	rig.r.OnReload(func(c *Compiled) {
		rig.mu.Lock()
		rig.applied = append(rig.applied, c)
		rig.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		rig.r.Run(ctx, rig.events, testDebounce, testPoll)
		close(done)
	}()
	rig.stop = func() { cancel(); <-done }
	return rig
}

func (rig *reloadRig) write(content string) {
	require.NoError(rig.t, os.WriteFile(rig.path, []byte(content), 0o600))
}

// hardCap is the tenant-daily cap of the configuration in force.
func (rig *reloadRig) hardCap() money.Nano {
	b, ok := rig.r.Current().Snapshot.Budgets.Budget("tenant-daily")
	require.True(rig.t, ok)
	hard, _ := b.Hard()
	return hard
}

func (rig *reloadRig) appliedCount() int {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return len(rig.applied)
}

// after lets fake time pass and every goroutine settle.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestReloadWaitsForQuietAndCoalescesABurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newReloadRig(t, withCap("10"))
		defer rig.stop()

		rig.write(withCap("20"))
		rig.events <- struct{}{}
		after(testDebounce / 2)
		assert.Equal(t, 0, rig.appliedCount(), "nothing before the debounce has passed")
		rig.events <- struct{}{} // a burst: the debounce starts again
		after(testDebounce - time.Millisecond)
		assert.Equal(t, 0, rig.appliedCount())
		after(time.Millisecond)
		require.Equal(t, 1, rig.appliedCount(), "one reload for the whole burst")
		assert.Equal(t, money.Nano(20e9), rig.hardCap())
		st := rig.r.Status()
		assert.Equal(t, int64(1), st.Reloads)
		assert.Zero(t, st.Failures)
		assert.Empty(t, st.LastError)

		// A notification without a change of content installs nothing.
		rig.events <- struct{}{}
		after(testDebounce)
		assert.Equal(t, 1, rig.appliedCount())
	})
}

func TestPollFindsAChangeWithoutNotification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newReloadRig(t, withCap("10"))
		defer rig.stop()
		rig.write(withCap("30"))
		after(testPoll - time.Millisecond)
		assert.Equal(t, 0, rig.appliedCount())
		after(time.Millisecond)
		assert.Equal(t, 1, rig.appliedCount())
		assert.Equal(t, money.Nano(30e9), rig.hardCap())
	})
}

func TestBrokenUpdateKeepsTheConfigurationInForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newReloadRig(t, withCap("10"))
		defer rig.stop()
		before := rig.r.Current()

		rig.write(withCap("20") + "limits:\n  max_request: 1\n")
		rig.events <- struct{}{}
		after(testDebounce)
		assert.Same(t, before, rig.r.Current(), "the last good configuration stays")
		assert.Equal(t, 0, rig.appliedCount())
		st := rig.r.Status()
		assert.Equal(t, int64(1), st.Failures)
		assert.Equal(t, "line 13: limits.max_request: unknown key; did you mean \"max_request_usd\"? (allowed: max_request_usd, reservation_ttl, background_ttl, streams)", st.LastError)
		assert.False(t, st.LastErrorAt.IsZero())

		// The same broken content is judged once, not at every poll.
		after(3 * testPoll)
		assert.Equal(t, int64(1), rig.r.Status().Failures)

		// Put back as it was: nothing to install, and no error any more.
		rig.write(withCap("10"))
		after(testPoll)
		st = rig.r.Status()
		assert.Empty(t, st.LastError)
		assert.Equal(t, int64(0), st.Reloads)

		// A fixed file is installed.
		rig.write(withCap("40"))
		rig.events <- struct{}{}
		after(testDebounce)
		assert.Equal(t, money.Nano(40e9), rig.hardCap())
		assert.Equal(t, int64(1), rig.r.Status().Reloads)
	})
}

func TestUnreadableFileKeepsTheConfigurationInForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newReloadRig(t, withCap("10"))
		defer rig.stop()
		require.NoError(t, os.Remove(rig.path))
		rig.events <- struct{}{}
		after(testDebounce)
		after(2 * testPoll)
		st := rig.r.Status()
		assert.Equal(t, int64(1), st.Failures, "the same read error is counted once")
		assert.Contains(t, st.LastError, "cannot read the configuration")
		assert.Equal(t, money.Nano(10e9), rig.hardCap())

		rig.write(withCap("15"))
		after(testPoll)
		assert.Equal(t, money.Nano(15e9), rig.hardCap())
		assert.Empty(t, rig.r.Status().LastError)
	})
}

func TestRestartSectionsAreReported(t *testing.T) {
	rig := &reloadRig{t: t, path: filepath.Join(t.TempDir(), "spendguard.yaml")}
	rig.write(withCap("10") + "admin:\n  token: a\n")
	r, err := NewReloader(rig.path, ReloaderOptions{Loader: Loader{LookupEnv: env(nil)}})
	require.NoError(t, err)
	rig.r = r

	// Moved down by a comment, same meaning: nothing waits for a restart.
	rig.write("# a comment\n" + withCap("20") + "admin:\n  token: a\n")
	ok, err := r.Check()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Empty(t, r.Status().RestartNeeded)

	rig.write(withCap("20") + "admin:\n  token: b\nstore:\n  backend: memory\n  on_error: fail_open\n")
	ok, err = r.Check()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []string{"store", "admin"}, r.Status().RestartNeeded)
	assert.Equal(t, money.Nano(20e9), rig.hardCap(), "the rest is installed")
}

func TestNewReloaderRefusesAnInvalidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(withCap("ten")), 0o600))
	_, err := NewReloader(path, ReloaderOptions{Loader: Loader{LookupEnv: env(nil)}})
	var ps Problems
	require.ErrorAs(t, err, &ps)
	_, err = NewReloader(filepath.Join(t.TempDir(), "missing.yaml"), ReloaderOptions{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSameNodeGivesUpOnHugeTrees(t *testing.T) {
	var a, b struct {
		X yaml.Node `yaml:"x"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("x: &x {a: [1, 2]}"), &a))
	require.NoError(t, yaml.Unmarshal([]byte("x: {a: [1, 2]}"), &b))
	budget := 100
	assert.True(t, sameNode(&a.X, &b.X, &budget))
	budget = 2
	assert.False(t, sameNode(&a.X, &b.X, &budget))
}

func TestOnResultIsToldEveryJudgedChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(withCap("10")), 0o600))
	r, err := NewReloader(path, ReloaderOptions{Loader: Loader{LookupEnv: env(nil)}})
	require.NoError(t, err)
	var results []error
	r.OnResult(func(err error) { results = append(results, err) })
	for _, content := range []string{withCap("10"), withCap("20"), withCap("20"), withCap("x"), withCap("x"), withCap("30")} {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, _ = r.Check()
	}
	require.Len(t, results, 3, "unchanged content is not reported")
	assert.NoError(t, results[0])
	assert.ErrorAs(t, results[1], new(Problems))
	assert.NoError(t, results[2])
}

func TestBudgetChanges(t *testing.T) {
	parse := func(s string) *Compiled {
		c, err := Loader{LookupEnv: env(nil)}.Parse([]byte(s))
		require.NoError(t, err)
		return c
	}
	before := parse(minimal)
	renamed := parse(strings.Replace(minimal, "name: tenant-daily", "name: tenant-per-day", 1))
	added, removed := budgetChanges(before, renamed)
	assert.Equal(t, []string{"tenant-per-day"}, added)
	assert.Equal(t, []string{"tenant-daily"}, removed)
	added, removed = budgetChanges(before, parse(withCap("99")))
	assert.Empty(t, added)
	assert.Empty(t, removed)
}
