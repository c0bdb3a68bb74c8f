package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/auth"
	"github.com/berth-dev/berth/internal/registry/storage"
)

// Error is a distribution-spec error: an HTTP status and a code from the
// spec's table, rendered as {"errors":[{"code","message","detail"}]}.
type Error struct {
	Status  int
	Code    string
	Message string
	Detail  any
	// Header is extra headers to send (WWW-Authenticate).
	Header http.Header
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The spec's codes.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
	codeRangeInvalid        = "RANGE_INVALID" // Docker's, for 416
)

// what a failed operation was about: the same NotFound is BLOB_UNKNOWN
// for a blob and MANIFEST_UNKNOWN for a manifest.
type subject int

const (
	aboutBlob subject = iota
	aboutUpload
	aboutManifest
	aboutRepo
)

// toError maps an error once, at the edge, to the spec's code.
func toError(err error, about subject) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	var ch *auth.Challenge
	if errors.As(err, &ch) {
		e := &Error{Status: ch.Status, Code: ch.Code, Message: ch.Message}
		if ch.Header != "" {
			e.Header = http.Header{"Www-Authenticate": {ch.Header}}
		}
		return e
	}
	msg := err.Error()
	switch {
	case errors.Is(err, storage.ErrRangeInvalid):
		return &Error{Status: http.StatusRequestedRangeNotSatisfiable, Code: codeBlobUploadInvalid, Message: msg}
	case errors.Is(err, storage.ErrDigestMismatch):
		return &Error{Status: http.StatusBadRequest, Code: codeDigestInvalid, Message: msg}
	case errors.Is(err, storage.ErrBlobUnknown):
		return &Error{Status: http.StatusBadRequest, Code: codeManifestBlobUnknown, Message: msg}
	case errors.Is(err, storage.ErrTagImmutable):
		return &Error{Status: http.StatusForbidden, Code: codeDenied, Message: msg}
	case errors.Is(err, storage.ErrQuota):
		return &Error{Status: http.StatusForbidden, Code: codeDenied, Message: msg}
	case errors.Is(err, storage.ErrTooLarge):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: codeSizeInvalid, Message: msg}
	case errdefs.IsNotFound(err):
		switch about {
		case aboutUpload:
			return &Error{Status: http.StatusNotFound, Code: codeBlobUploadUnknown, Message: msg}
		case aboutManifest:
			return &Error{Status: http.StatusNotFound, Code: codeManifestUnknown, Message: msg}
		case aboutRepo:
			return &Error{Status: http.StatusNotFound, Code: codeNameUnknown, Message: msg}
		}
		return &Error{Status: http.StatusNotFound, Code: codeBlobUnknown, Message: msg}
	case errdefs.IsInvalidArgument(err):
		if about == aboutManifest {
			return &Error{Status: http.StatusBadRequest, Code: codeManifestInvalid, Message: msg}
		}
		return &Error{Status: http.StatusBadRequest, Code: codeDigestInvalid, Message: msg}
	case errdefs.IsUnavailable(err):
		return &Error{Status: http.StatusBadGateway, Code: "UNAVAILABLE", Message: msg}
	case errdefs.IsCanceled(err):
		return &Error{Status: 499, Code: codeBlobUploadInvalid, Message: "request canceled"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "UNKNOWN", Message: msg}
}

func writeError(w http.ResponseWriter, e *Error) {
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	// A handler may have set headers for a success (an upload's
	// "Content-Length: 0"); the error body must not break them.
	w.Header().Del("Content-Length")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	json.NewEncoder(w).Encode(map[string][]item{"errors": {{e.Code, e.Message, e.Detail}}})
}
