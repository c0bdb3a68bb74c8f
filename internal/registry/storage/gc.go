package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/errdefs"
)

// GCOptions shape a collection.
type GCOptions struct {
	// DryRun finds what would go and removes nothing.
	DryRun bool
	// Grace spares what was written or referenced this recently: blobs of
	// a push whose manifest is not there yet, manifests of an index being
	// pushed child first. Pushes keep touching what they reference, so a
	// push racing the collection is spared too.
	Grace time.Duration
	// DeleteUntagged removes manifests that no tag keeps, directly or
	// through an index or as a referrer of a kept manifest.
	DeleteUntagged bool
	// Retention gives a repository's policy: how many of its newest tags
	// to keep (0: all), and the age past which untagged manifests go (0:
	// never, unless DeleteUntagged).
	Retention func(repo string) (keepTags int, untaggedOlderThan time.Duration)
}

// GCResult is what a collection removed (or, dry, would remove).
type GCResult struct {
	Tags      []string // repo:tag
	Manifests []string // repo@digest
	Blobs     []digest.Digest
	Bytes     int64
}

// Collect is online mark and sweep: it marks every blob a kept manifest
// references (an index's children, a referrer's subject relation, config
// and layers), then removes blobs nothing marked and nothing touched
// since the collection began (less Grace). A blob is taken out of sight
// by a move before it is deleted, and put back if a push touched it
// meanwhile, so a push that raced the mark loses nothing.
func (s *Store) Collect(ctx context.Context, o GCOptions) (GCResult, error) {
	var res GCResult
	start := time.Now()
	cutoff := start.Add(-o.Grace)
	repos, err := s.Repositories(ctx)
	if err != nil {
		return res, err
	}
	marked := map[digest.Digest]bool{}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := s.collectRepo(ctx, repo, o, cutoff, marked, &res); err != nil {
			return res, fmt.Errorf("collecting %s: %w", repo, err)
		}
	}
	// Sweep the blobs nothing marked.
	algs, err := s.d.List(ctx, "blobs")
	if err != nil && !errdefs.IsNotFound(err) {
		return res, err
	}
	for _, alg := range algs {
		prefixes, _ := s.d.List(ctx, "blobs/"+alg)
		for _, p := range prefixes {
			hexes, _ := s.d.List(ctx, "blobs/"+alg+"/"+p)
			for _, h := range hexes {
				if err := ctx.Err(); err != nil {
					return res, err
				}
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), h)
				if d.Validate() != nil || marked[d] {
					continue
				}
				key := blobKey(d)
				info, err := s.d.Stat(ctx, key)
				if err != nil || !info.ModTime.Before(cutoff) {
					continue
				}
				if o.DryRun {
					res.Blobs = append(res.Blobs, d)
					res.Bytes += info.Size
					continue
				}
				gone, err := s.sweepBlob(ctx, d, cutoff)
				if err != nil {
					return res, err
				}
				if gone {
					res.Blobs = append(res.Blobs, d)
					res.Bytes += info.Size
				}
			}
		}
	}
	return res, nil
}

// sweepBlob moves a blob out of sight, checks no push touched it since the
// cutoff, and deletes it (or moves it back). The blob's lock keeps this
// process's pushes out meanwhile; a push from elsewhere that finds the
// blob moved aside moves it back itself (touchBlobLocked), which the
// checks here see.
func (s *Store) sweepBlob(ctx context.Context, d digest.Digest, cutoff time.Time) (bool, error) {
	mu := s.blobLock(d)
	mu.Lock()
	defer mu.Unlock()
	key, trash := blobKey(d), pendingKey(d)
	// A sweep a crash cut short may have left its copy: gone first, or
	// the move below would keep that stale copy and drop the live blob.
	if err := s.d.Delete(ctx, trash); err != nil {
		return false, err
	}
	if err := s.d.Publish(ctx, key, trash); err != nil {
		if errdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	info, err := s.d.Stat(ctx, trash)
	if err == nil && !info.ModTime.Before(cutoff) {
		// Touched by a push between the mark and now: it stays.
		return false, s.d.Publish(ctx, trash, key)
	}
	return s.dropAside(ctx, d)
}

// dropAside deletes blob d's copy held aside. The copy goes first, alone:
// if a push moved it back meanwhile, this removes nothing and the blob
// stays (gone is false).
func (s *Store) dropAside(ctx context.Context, d digest.Digest) (gone bool, err error) {
	key := blobKey(d)
	if err := s.d.Delete(ctx, pendingKey(d)); err != nil {
		return false, err
	}
	if _, err := s.d.Stat(ctx, key); err == nil {
		// Moved back, or uploaded again meanwhile: it stays.
		return false, nil
	}
	return true, s.d.Delete(ctx, strings.TrimSuffix(key, "/data"))
}

type revision struct {
	d       digest.Digest
	m       *Manifest
	modTime time.Time
}

func (s *Store) collectRepo(ctx context.Context, repo string, o GCOptions, cutoff time.Time, marked map[digest.Digest]bool, res *GCResult) error {
	keepTags, untaggedAge := 0, time.Duration(0)
	if o.Retention != nil {
		keepTags, untaggedAge = o.Retention(repo)
	}
	mu := s.repoLock(repo)
	mu.Lock()
	defer mu.Unlock()

	// Tags, newest first; retention drops the oldest past keepTags.
	type tagged struct {
		name    string
		d       digest.Digest
		modTime time.Time
	}
	var tags []tagged
	names, _ := s.d.List(ctx, tagsKey(repo))
	for _, t := range names {
		b, err := s.d.GetContent(ctx, tagKey(repo, t))
		if err != nil {
			continue
		}
		d, err := ParseDigest(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		info, _ := s.d.Stat(ctx, tagKey(repo, t))
		tags = append(tags, tagged{t, d, info.ModTime})
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].modTime.After(tags[j].modTime) })
	if keepTags > 0 && len(tags) > keepTags {
		for _, t := range tags[keepTags:] {
			res.Tags = append(res.Tags, repo+":"+t.name)
			if !o.DryRun {
				if err := s.d.Delete(ctx, tagsKey(repo)+"/"+t.name); err != nil {
					return err
				}
			}
		}
		tags = tags[:keepTags]
	}

	// Every revision, parsed.
	revs := map[digest.Digest]*revision{}
	algs, _ := s.d.List(ctx, revisionsKey(repo))
	for _, alg := range algs {
		hexes, _ := s.d.List(ctx, revisionsKey(repo)+"/"+alg)
		for _, h := range hexes {
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), h)
			if d.Validate() != nil {
				continue
			}
			info, err := s.d.Stat(ctx, revisionKey(repo, d))
			if err != nil {
				continue
			}
			body, err := s.d.GetContent(ctx, blobKey(d))
			if err != nil {
				continue // its content is gone: nothing to mark
			}
			m, err := ParseManifest(body, "")
			if err != nil {
				m = &Manifest{}
			}
			revs[d] = &revision{d: d, m: m, modTime: info.ModTime}
		}
	}

	// What stays: with no untagged policy, every revision. Otherwise the
	// tagged ones, what their indexes hold, their referrers (and their
	// referrers' closure), and whatever is younger than the grace or the
	// retention age.
	keep := map[digest.Digest]bool{}
	pruneUntagged := o.DeleteUntagged || untaggedAge > 0
	for d, r := range revs {
		young := !r.modTime.Before(cutoff) || (!o.DeleteUntagged && untaggedAge > 0 && time.Since(r.modTime) < untaggedAge)
		if !pruneUntagged || young {
			keep[d] = true
		}
	}
	for _, t := range tags {
		keep[t.d] = true
	}
	for changed := true; changed; {
		changed = false
		for d, r := range revs {
			if keep[d] {
				for _, c := range r.m.Manifests {
					if !keep[c.Digest] {
						keep[c.Digest], changed = true, true
					}
				}
			} else if r.m.Subject != nil && keep[r.m.Subject.Digest] {
				keep[d], changed = true, true
			}
		}
	}
	var drop []digest.Digest
	for d := range revs {
		if !keep[d] {
			drop = append(drop, d)
		}
	}
	slices.Sort(drop)
	for _, d := range drop {
		res.Manifests = append(res.Manifests, repo+"@"+d.String())
		if !o.DryRun {
			if err := s.deleteRevisionLocked(ctx, repo, d); err != nil {
				return err
			}
		}
	}

	// Mark what the kept manifests reference.
	repoMarked := map[digest.Digest]bool{}
	for d, r := range revs {
		if !keep[d] {
			continue
		}
		repoMarked[d] = true
		if r.m.Config != nil {
			repoMarked[r.m.Config.Digest] = true
		}
		for _, l := range r.m.Layers {
			repoMarked[l.Digest] = true
		}
	}
	// A layer link no kept manifest references goes once it is older
	// than the grace (a push in progress links first, references later).
	lalgs, _ := s.d.List(ctx, repoKey(repo)+"/_layers")
	for _, alg := range lalgs {
		hexes, _ := s.d.List(ctx, repoKey(repo)+"/_layers/"+alg)
		for _, h := range hexes {
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), h)
			if d.Validate() != nil || repoMarked[d] {
				continue
			}
			if err := s.dropLink(ctx, repo, d, cutoff, o.DryRun); err != nil {
				if errors.Is(err, errYoung) {
					repoMarked[d] = true
					continue
				}
				return err
			}
		}
	}
	for d := range repoMarked {
		marked[d] = true
	}
	return nil
}

// errYoung is a link touched since the cutoff: it stays.
var errYoung = errors.New("touched since the collection began")

// dropLink removes repo's link to blob d unless it was touched since the
// cutoff; under the blob's lock, so a push cannot renew the link between
// the check and the removal.
func (s *Store) dropLink(ctx context.Context, repo string, d digest.Digest, cutoff time.Time, dryRun bool) error {
	mu := s.blobLock(d)
	mu.Lock()
	defer mu.Unlock()
	info, err := s.d.Stat(ctx, layerLinkKey(repo, d))
	if err != nil {
		return nil
	}
	if !info.ModTime.Before(cutoff) {
		return errYoung
	}
	if dryRun {
		return nil
	}
	return s.d.Delete(ctx, strings.TrimSuffix(layerLinkKey(repo, d), "/link"))
}

// StoredBytes is the size of every blob, each counted once.
func (s *Store) StoredBytes(ctx context.Context) (int64, error) {
	var total int64
	algs, err := s.d.List(ctx, "blobs")
	if errdefs.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, alg := range algs {
		prefixes, _ := s.d.List(ctx, "blobs/"+alg)
		for _, p := range prefixes {
			hexes, _ := s.d.List(ctx, "blobs/"+alg+"/"+p)
			for _, h := range hexes {
				if info, err := s.d.Stat(ctx, "blobs/"+alg+"/"+p+"/"+h+"/data"); err == nil {
					total += info.Size
				}
			}
		}
	}
	return total, nil
}
