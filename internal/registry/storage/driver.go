// Package storage holds the registry's content: blobs stored once by
// digest and shared by every repository, and per repository the links
// that say what it holds (layers, manifest revisions, tags, referrers)
// and its upload sessions.
//
// Store gives the registry's semantics on top of a Driver, the primitive
// object store. The filesystem driver is the one built; the Driver's
// operations are chosen so that an S3-compatible object store can
// implement them too (see docs/design/registry-storage.md): whole-object
// get and put, ranged reads, listing by prefix, delete, an append-only
// upload object, and a move that publishes a finished upload.
package storage

import (
	"context"
	"io"
	"time"
)

// Driver is the object store a Store runs on. Keys are slash-separated
// paths ("blobs/sha256/ab/abcd.../data"); no key is a prefix of another
// object's key except through a "/".
type Driver interface {
	// GetContent reads a small object whole.
	GetContent(ctx context.Context, key string) ([]byte, error)
	// PutContent replaces an object atomically: a reader, or a crash at
	// any moment, sees the old content or the new, never a mix.
	PutContent(ctx context.Context, key string, data []byte) error
	// Open opens an object for reading; the reader seeks (ranged GETs).
	Open(ctx context.Context, key string) (Object, error)
	// Stat describes an object.
	Stat(ctx context.Context, key string) (Info, error)
	// List names the children of a prefix, one level, sorted. A missing
	// prefix is errdefs.NotFound.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes an object, or a prefix and everything under it. A
	// missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Append opens an upload object for adding bytes at its end, creating
	// it when missing.
	Append(ctx context.Context, key string) (Appender, error)
	// Publish moves a finished, verified upload object to dst. If dst
	// exists (the same content, stored by another upload) it is kept and
	// src is removed. Readers never see dst partly written.
	Publish(ctx context.Context, src, dst string) error
	// Touch sets an object's modification time to now: garbage
	// collection spares what was touched since it started marking.
	Touch(ctx context.Context, key string) error
}

// Object is an open object.
type Object interface {
	io.ReadSeekCloser
	Info() Info
}

// Info describes an object.
type Info struct {
	Size    int64
	ModTime time.Time
	Dir     bool
}

// Appender adds bytes to an upload object.
type Appender interface {
	io.Writer
	// Size is the object's length, what was there before and what was
	// written since.
	Size() int64
	// Sync makes what was written durable.
	Sync() error
	// Truncate cuts the object back to size (a chunk that failed half
	// way is discarded, so the upload resumes where it was).
	Truncate(size int64) error
	Close() error
	// Reader reads the object from the start (to verify its digest).
	Reader() (io.ReadCloser, error)
}
