// Package atomicfile writes files so that a crash at any moment leaves
// either the old content or the new, never a mix: write a temp file in the
// same directory, fsync it, rename it over the target, fsync the directory.
// It also holds the advisory file lock berth's stores use between processes.
package atomicfile

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteWith atomically replaces path with what write writes, buffered. If
// write fails, path is untouched.
func WriteWith(path string, perm os.FileMode, write func(io.Writer) error) error {
	return replace(path, perm, func(f *os.File) error {
		// 64 KiB: big enough for few syscalls on large files, small
		// enough not to matter in the shim, which writes small files.
		bw := bufio.NewWriterSize(f, 64<<10)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// replace writes a temp file in path's directory with fill, fsyncs it and
// renames it over path.
func replace(path string, perm os.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that a rename or unlink in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Lock is an exclusive advisory lock (flock) on a file, held until Unlock.
type Lock struct{ f *os.File }

// Acquire takes an exclusive flock on path, creating the file if needed,
// waiting until it is free or ctx is done. flock is released by the kernel
// when the process dies, so a kill -9 never leaves a stale lock.
func Acquire(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, unix.LOCK_EX)
}

// AcquireShared takes a shared flock on path: many holders at once, none
// while an exclusive holder has it. Pulls hold it so that garbage
// collection, which takes it exclusively, never sweeps blobs a pull has
// committed but not yet recorded.
func AcquireShared(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, path, unix.LOCK_SH)
}

func acquire(ctx context.Context, path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			if sameFile(f, path) {
				return &Lock{f: f}, nil
			}
			// The holder removed the lock file (e.g. a committed ingest)
			// while we waited: our lock is on a dead inode. Start over.
			f.Close()
			return acquire(ctx, path, how)
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// TryAcquire takes the lock only if it is free; ok is false if another
// holder has it.
func TryAcquire(path string) (l *Lock, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return &Lock{f: f}, true, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
