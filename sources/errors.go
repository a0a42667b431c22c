package sources

import (
	"context"
	"errors"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

var (
	// ErrAuth: the server refused the credentials (or there were none and it wanted some).
	ErrAuth = errors.New("authentication failed")
	// ErrHostKey: the SSH server's host key is not in known_hosts or does not match.
	ErrHostKey = errors.New("ssh host key not trusted")
	// ErrRepoNotFound: the server has no repository at that URL (or hides it).
	ErrRepoNotFound = errors.New("repository not found")
	// ErrBranchNotFound: the remote has no such branch (or the repository is empty).
	ErrBranchNotFound = errors.New("branch not found")
	// ErrCommitNotFound: the commit is not in the mirror, even after fetching more history.
	ErrCommitNotFound = errors.New("commit not found")
)

// errCorrupt marks a mirror that can no longer be read; Sync replaces it.
var errCorrupt = errors.New("mirror is corrupted")

// remoteError is an error from a network call with secrets scrubbed from its message.
// It unwraps to the original (for errors.Is on go-git and context errors) and to a
// classification such as ErrAuth.
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// describe classifies and scrubs an error from go-git for repo. ctx is the per-call
// context, so a timeout reads as one instead of as a transport error.
func describe(ctx context.Context, repo Repo, err error) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	msg := err.Error()
	if kind := classify(err); kind != nil {
		errs = append(errs, kind)
		if !errors.Is(err, kind) {
			msg = kind.Error() + ": " + msg
		}
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		errs = append(errs, cerr)
		msg = cerr.Error() + ": " + msg
	}
	return &remoteError{msg: scrub(msg, repo.secrets()), errs: errs}
}

func classify(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, "unable to authenticate"):
		return ErrAuth
	case strings.Contains(msg, "knownhosts:"), strings.Contains(msg, "host key"):
		return ErrHostKey
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return ErrRepoNotFound
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return ErrBranchNotFound
	}
	return nil
}

// mayBeLocal reports whether a failed network operation could have been caused by the
// mirror itself (a broken pack, a bad ref) rather than by the server or the caller.
func mayBeLocal(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrHostKey) &&
		!errors.Is(err, ErrRepoNotFound) && !errors.Is(err, ErrBranchNotFound) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
