package config

import (
	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// WatchDir notifies on the returned channel when anything changes in dir:
// a file written, created, removed or renamed. It watches the directory,
// not the file, because kubelet updates a ConfigMap volume by creating a
// new timestamped directory and renaming a new ..data symlink over the old
// one: a watch on the file itself would see one removal and then nothing.
// Notifications are coalesced (at most one is pending) and say nothing
// about what changed: the Reloader compares contents. stop ends the watch;
// the channel is never closed.
func WatchDir(dir string, log *zap.Logger) (events <-chan struct{}, stop func() error, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, err
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return nil, nil, err
	}
	out := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// Events may have been lost (e.g. a queue overflow): check.
				log.Warn("watching the configuration directory", zap.String("dir", dir), zap.Error(err))
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, w.Close, nil
}
