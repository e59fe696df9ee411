// Package configmaptest lays out a directory the way kubelet mounts a
// ConfigMap volume, and updates it the way kubelet does, for tests of
// configuration reload. After New and after every Update the directory
// holds:
//
//	..2026_11_28_10_00_01.123456789/spendguard.yaml   the content
//	..data -> ..2026_11_28_10_00_01.123456789         the current version
//	spendguard.yaml -> ..data/spendguard.yaml         what the program opens
//
// Update follows kubelet's AtomicWriter: write the new version into a new
// timestamped directory, point a new symlink ..data_tmp at it, rename
// ..data_tmp over ..data (the one atomic step: a reader sees the old
// version or the new one, never a mix), add the visible symlinks of new
// files, remove those of files no longer in the ConfigMap, and remove the
// old timestamped directory.
package configmaptest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	dataDir    = "..data"
	dataDirTmp = "..data_tmp"
)

// Dir is a ConfigMap volume in a test.
type Dir struct {
	// Root is the mount point (what a pod's volumeMounts.mountPath names).
	Root    string
	t       testing.TB
	version int
	files   map[string]bool
}

// New lays out files (name → content) in a new directory under
// t.TempDir().
func New(t testing.TB, files map[string]string) *Dir {
	t.Helper()
	d := &Dir{Root: filepath.Join(t.TempDir(), "configmap"), t: t, files: map[string]bool{}}
	if err := os.Mkdir(d.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	d.Update(files)
	return d
}

// Path is the visible path of a file, as a program is configured with.
func (d *Dir) Path(name string) string { return filepath.Join(d.Root, name) }

// Update replaces the whole content of the ConfigMap, as kubelet does.
func (d *Dir) Update(files map[string]string) {
	d.t.Helper()
	if err := d.update(files); err != nil {
		d.t.Fatalf("configmaptest: %v", err)
	}
}

func (d *Dir) update(files map[string]string) error {
	old, err := os.Readlink(filepath.Join(d.Root, dataDir))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	// 1. The new version, in a new timestamped directory.
	d.version++
	ts, err := os.MkdirTemp(d.Root, fmt.Sprintf("..2026_11_28_10_00_%02d.", d.version%60))
	if err != nil {
		return err
	}
	for name, content := range files {
		if strings.ContainsRune(name, '/') || strings.HasPrefix(name, "..") {
			return fmt.Errorf("file name %q: ConfigMap keys are plain names", name)
		}
		if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	// 2. A new symlink to it, renamed over ..data: the atomic swap.
	tmp := filepath.Join(d.Root, dataDirTmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.Root, dataDir)); err != nil {
		return err
	}
	// 3. Visible symlinks for new files; removal of those of gone files.
	for name := range files {
		if !d.files[name] {
			if err := os.Symlink(filepath.Join(dataDir, name), d.Path(name)); err != nil {
				return err
			}
			d.files[name] = true
		}
	}
	for name := range d.files {
		if _, ok := files[name]; !ok {
			if err := os.Remove(d.Path(name)); err != nil {
				return err
			}
			delete(d.files, name)
		}
	}
	// 4. The old version goes.
	if old != "" {
		return os.RemoveAll(filepath.Join(d.Root, old))
	}
	return nil
}
