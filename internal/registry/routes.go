package registry

import (
	"strings"

	"github.com/berth-dev/berth/internal/registry/storage"
)

type routeKind int

const (
	routeBase routeKind = iota + 1
	routeCatalog
	routeTags
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeReferrers
)

// route is a parsed /v2/ path.
type route struct {
	kind routeKind
	name string // the repository
	ref  string // a tag or digest, a blob's digest, an upload ID
}

// parseRoute reads a /v2/ path. Names hold slashes, so the kind is found
// from the right: the last /manifests/, /blobs/uploads/, /blobs/,
// /referrers/ or /tags/list. A path that is no route is a nil error and
// a zero kind (404); a route with a bad name is a *Error (NAME_INVALID).
func parseRoute(path string) (route, *Error) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return route{kind: routeBase}, nil
		}
		return route{}, nil
	}
	if rest == "" {
		return route{kind: routeBase}, nil
	}
	if rest == "_catalog" {
		return route{kind: routeCatalog}, nil
	}
	var r route
	switch {
	case strings.HasSuffix(rest, "/tags/list"):
		r = route{kind: routeTags, name: strings.TrimSuffix(rest, "/tags/list")}
	case strings.Contains(rest, "/blobs/uploads/"), strings.HasSuffix(rest, "/blobs/uploads"):
		i := strings.LastIndex(rest, "/blobs/uploads")
		r.name, r.ref = rest[:i], strings.TrimPrefix(strings.TrimPrefix(rest[i:], "/blobs/uploads"), "/")
		r.kind = routeUpload
		if r.ref == "" {
			r.kind = routeUploadStart
		}
	case strings.Contains(rest, "/manifests/"):
		i := strings.LastIndex(rest, "/manifests/")
		r = route{kind: routeManifest, name: rest[:i], ref: rest[i+len("/manifests/"):]}
	case strings.Contains(rest, "/blobs/"):
		i := strings.LastIndex(rest, "/blobs/")
		r = route{kind: routeBlob, name: rest[:i], ref: rest[i+len("/blobs/"):]}
	case strings.Contains(rest, "/referrers/"):
		i := strings.LastIndex(rest, "/referrers/")
		r = route{kind: routeReferrers, name: rest[:i], ref: rest[i+len("/referrers/"):]}
	default:
		return route{}, nil
	}
	if r.ref != "" && strings.Contains(r.ref, "/") {
		return route{}, nil
	}
	if err := storage.ValidName(r.name); err != nil {
		return route{}, &Error{Status: 400, Code: codeNameInvalid, Message: err.Error()}
	}
	return r, nil
}
