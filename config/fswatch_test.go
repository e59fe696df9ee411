package config

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/config/configmaptest"
	"github.com/spendguard/spendguard/internal/money"
)

// waitFor bounds the waits for real file system notifications: generous,
// since a loaded CI machine may be slow, and never a measure of speed.
const waitFor = 10 * time.Second

func TestConfigMapLayout(t *testing.T) {
	cm := configmaptest.New(t, map[string]string{"spendguard.yaml": "a", "other.yaml": "x"})
	data, err := os.Readlink(filepath.Join(cm.Root, "..data"))
	require.NoError(t, err)
	assert.Regexp(t, `^\.\.2026_11_28_10_00_01\.\d+$`, data)
	link, err := os.Readlink(cm.Path("spendguard.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "..data/spendguard.yaml", link)

	cm.Update(map[string]string{"spendguard.yaml": "b"})
	got, err := os.ReadFile(cm.Path("spendguard.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "b", string(got))
	entries, err := os.ReadDir(cm.Root)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Len(t, names, 3, "the new version, ..data and the file: %v", names)
	assert.Regexp(t, `^\.\.2026_11_28_10_00_02\.\d+$`, names[0])
	assert.Equal(t, []string{"..data", "spendguard.yaml"}, names[1:], "other.yaml left the ConfigMap")
}

func TestWatchDirSeesAKubeletSwap(t *testing.T) {
	cm := configmaptest.New(t, map[string]string{"spendguard.yaml": withCap("10")})
	events, stop, err := WatchDir(cm.Root, nil)
	require.NoError(t, err)
	defer stop()

	cm.Update(map[string]string{"spendguard.yaml": withCap("20")})
	select {
	case <-events:
	case <-time.After(waitFor):
		t.Fatal("no notification for the ..data swap")
	}
}

// TestReloadFromAConfigMap runs a Reloader on a ConfigMap volume with real
// notifications (no poll): each kubelet update is installed, a broken one
// is refused and the one in force stays.
func TestReloadFromAConfigMap(t *testing.T) {
	cm := configmaptest.New(t, map[string]string{"spendguard.yaml": withCap("10")})
	r, err := NewReloader(cm.Path("spendguard.yaml"), ReloaderOptions{Loader: Loader{LookupEnv: env(nil)}})
	require.NoError(t, err)
	events, stop, err := WatchDir(cm.Root, nil)
	require.NoError(t, err)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, events, 10*time.Millisecond, 0); close(done) }()
	defer func() { cancel(); <-done }()

	hard := func() money.Nano {
		b, _ := r.Current().Snapshot.Budgets.Budget("tenant-daily")
		h, _ := b.Hard()
		return h
	}
	cm.Update(map[string]string{"spendguard.yaml": withCap("20")})
	require.Eventually(t, func() bool { return r.Status().Reloads == 1 }, waitFor, 5*time.Millisecond)
	assert.Equal(t, money.Nano(20e9), hard())

	cm.Update(map[string]string{"spendguard.yaml": withCap("-5")})
	require.Eventually(t, func() bool { return r.Status().Failures == 1 }, waitFor, 5*time.Millisecond)
	assert.Equal(t, money.Nano(20e9), hard())
	assert.Contains(t, r.Status().LastError, `line 11: budget "tenant-daily": hard_usd must not be negative`)

	cm.Update(map[string]string{"spendguard.yaml": withCap("30")})
	require.Eventually(t, func() bool { return r.Status().Reloads == 2 }, waitFor, 5*time.Millisecond)
	assert.Equal(t, money.Nano(30e9), hard())
	assert.Empty(t, r.Status().LastError)
}
