// Package errdefs holds berth's error classes. Packages wrap their errors
// with one of these sentinels (fmt.Errorf("...: %w", errdefs.ErrNotFound) or
// errdefs.NotFound(err)) and callers branch with errors.Is or the IsX
// helpers; nobody compares error strings. Edges (the CLI exit code, the
// Docker API, the registry server) map the classes exactly once.
//
// Any package may import errdefs; errdefs imports only the standard library.
package errdefs

import (
	"context"
	"errors"
	"fmt"
)

// The error classes. Each is a sentinel usable with errors.Is.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrConflict           = errors.New("conflict")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrDataLoss           = errors.New("data loss")
	ErrInternal           = errors.New("internal")
	// ErrNotModified says the request asked for a state the object is
	// already in (starting a running container); Docker answers 304.
	ErrNotModified = errors.New("not modified")
)

// classed attaches a class to an error without changing its message, so
// users see "pulling busybox: manifest unknown" rather than the class name.
type classed struct {
	err   error
	class error
}

func (c classed) Error() string   { return c.err.Error() }
func (c classed) Unwrap() []error { return []error{c.err, c.class} }

func wrap(err, class error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, class) {
		return err
	}
	return classed{err: err, class: class}
}

// NotFound marks err as ErrNotFound, keeping its message.
func NotFound(err error) error { return wrap(err, ErrNotFound) }

// AlreadyExists marks err as ErrAlreadyExists, keeping its message.
func AlreadyExists(err error) error { return wrap(err, ErrAlreadyExists) }

// InvalidArgument marks err as ErrInvalidArgument, keeping its message.
func InvalidArgument(err error) error { return wrap(err, ErrInvalidArgument) }

// Conflict marks err as ErrConflict, keeping its message.
func Conflict(err error) error { return wrap(err, ErrConflict) }

// FailedPrecondition marks err as ErrFailedPrecondition, keeping its message.
func FailedPrecondition(err error) error { return wrap(err, ErrFailedPrecondition) }

// Unavailable marks err as ErrUnavailable, keeping its message.
func Unavailable(err error) error { return wrap(err, ErrUnavailable) }

// NotImplemented marks err as ErrNotImplemented, keeping its message.
func NotImplemented(err error) error { return wrap(err, ErrNotImplemented) }

// Unauthenticated marks err as ErrUnauthenticated, keeping its message.
func Unauthenticated(err error) error { return wrap(err, ErrUnauthenticated) }

// PermissionDenied marks err as ErrPermissionDenied, keeping its message.
func PermissionDenied(err error) error { return wrap(err, ErrPermissionDenied) }

// DataLoss marks err as ErrDataLoss (corrupt or truncated content), keeping its message.
func DataLoss(err error) error { return wrap(err, ErrDataLoss) }

// NotModified marks err as ErrNotModified, keeping its message.
func NotModified(err error) error { return wrap(err, ErrNotModified) }

// Invalidf formats an ErrInvalidArgument error.
func Invalidf(format string, args ...any) error {
	return InvalidArgument(fmt.Errorf(format, args...))
}

// NotFoundf formats an ErrNotFound error.
func NotFoundf(format string, args ...any) error {
	return NotFound(fmt.Errorf(format, args...))
}

// Conflictf formats an ErrConflict error.
func Conflictf(format string, args ...any) error {
	return Conflict(fmt.Errorf(format, args...))
}

// Forbiddenf formats an ErrPermissionDenied error: an operation the
// object does not allow (HTTP 403), such as removing a pre-defined network.
func Forbiddenf(format string, args ...any) error {
	return PermissionDenied(fmt.Errorf(format, args...))
}

// IsNotFound reports whether err is of class ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of class ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err is of class ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsConflict reports whether err is of class ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsDataLoss reports whether err is of class ErrDataLoss.
func IsDataLoss(err error) bool { return errors.Is(err, ErrDataLoss) }

// IsNotModified reports whether err is of class ErrNotModified.
func IsNotModified(err error) bool { return errors.Is(err, ErrNotModified) }

// IsUnavailable reports whether err is of class ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsCanceled reports whether err comes from a cancelled or expired context.
func IsCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ExitCode maps an error class to the CLI's exit status. Docker's CLI exits 1
// for daemon-side errors and 125 for its own; berth keeps 1 for every failure
// and 125 for usage errors, which the CLI layer reports itself.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	return 1
}
