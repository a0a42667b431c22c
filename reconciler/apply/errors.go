package apply

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Classes of failure a caller may act on, tested with errors.Is on any error this package
// returns, joined lists included. They classify the API server's answer, which stays in
// the chain: apierrors.IsConflict, IsInvalid, IsForbidden and errors.As to
// apierrors.APIStatus work too.
var (
	// ErrConflict: the API server refused a write as conflicting (409), e.g. a manifest
	// carrying a stale metadata.resourceVersion. Field-ownership conflicts cannot happen:
	// apply and dry-run force ownership as field manager slipway.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the API server refused the object itself (422 Invalid, 400 BadRequest).
	ErrInvalid = errors.New("invalid object")
	// ErrForbidden: the cluster credentials may not do this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnhealthy: the health wait ended with an object failed or not ready in time.
	ErrUnhealthy = errors.New("not healthy")
	// ErrNotOwned: an object the manifests define exists on the cluster without the task's
	// identity, and the task may not take it over (a *NotOwnedError says why).
	ErrNotOwned = errors.New("not owned by this task")
)

// Op names what was being done to an object when it failed.
type Op string

// Operations an ObjectError can name.
const (
	OpPlan        Op = "plan"
	OpLookup      Op = "look up"
	OpDryRun      Op = "server-side dry-run"
	OpApply       Op = "apply"
	OpTakeOver    Op = "take over from kubectl"
	OpEstablished Op = "wait until established"
	OpPrune       Op = "prune"
	OpOwnership   Op = "ownership check"
)

// ObjectError is the failure of one object: which, where it was rendered from when known,
// what was being done, and the cause as returned (an API status error, a transport or
// context error). Its message is the API server's own message, not client-side wrapping.
type ObjectError struct {
	Op     Op
	Object string // Kind/namespace/name, Kind/name when cluster-scoped
	File   string // the manifest's file (or stored revision); "" when not known, as in prune
	Doc    int    // 1-based document within File
	Err    error
}

func (e *ObjectError) Error() string {
	return fmt.Sprintf("%s %s failed: %s", e.subject(), e.Op, apiMessage(e.Err))
}

func (e *ObjectError) subject() string {
	if e.File == "" {
		return e.Object
	}
	// As render.Manifest names it: Kind/ns/name (file, document n).
	return fmt.Sprintf("%s (%s, document %d)", e.Object, e.File, e.Doc)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Is answers the classes above from the cause.
func (e *ObjectError) Is(target error) bool { return isClass(e.Err, target) }

// isClass tells whether err, an answer of the API server, is of the class target.
func isClass(err, target error) bool {
	switch target {
	case ErrConflict:
		return apierrors.IsConflict(err)
	case ErrInvalid:
		return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
	case ErrForbidden:
		return apierrors.IsForbidden(err)
	}
	return false
}

// DryRunError lists every object the API server refused in the dry-run (each an
// *ObjectError); nothing was applied. errors.Is and errors.As see every one of them.
type DryRunError struct{ Errs []error }

func (e *DryRunError) Error() string {
	msg := "server-side dry-run failed, nothing was applied:"
	if errors.Is(e, ErrNotOwned) {
		msg = "refused before anything was applied:"
	}
	// Objects the API server never answered for (it is down, or unreachable) fail alike:
	// one line says so for all of them, not one line per object.
	unreached := map[string][]string{}
	var order, lines []string
	for _, err := range e.Errs {
		var oe *ObjectError
		if !errors.As(err, &oe) {
			lines = append(lines, err.Error())
			continue
		}
		if cause, ok := transportCause(oe.Err); ok {
			if len(unreached[cause]) == 0 {
				order = append(order, cause)
			}
			unreached[cause] = append(unreached[cause], oe.subject())
			continue
		}
		if oe.Op == OpDryRun {
			// The heading says what failed; each line names the object and the reason.
			lines = append(lines, oe.subject()+": "+apiMessage(oe.Err))
			continue
		}
		lines = append(lines, err.Error())
	}
	for _, cause := range order {
		objs := unreached[cause]
		if len(objs) == 1 {
			lines = append(lines, objs[0]+": the API server did not answer: "+cause)
			continue
		}
		lines = append(lines, fmt.Sprintf("%d objects, from %s to %s: the API server did not answer: %s", len(objs), objs[0], objs[len(objs)-1], cause))
	}
	// A run's reason stays readable when a whole manifest set is refused.
	if len(lines) > maxReasonLines {
		lines = append(lines[:maxReasonLines], fmt.Sprintf("and %d more objects", len(lines)-maxReasonLines))
	}
	for _, l := range lines {
		msg += "\n  " + l
	}
	return msg
}

// maxReasonLines bounds the objects a DryRunError lists one by one.
const maxReasonLines = 20

// transportCause says, in a few words, why a request got no whole answer from the API
// server (refused, reset, cut off, timed out), and to which server, leaving out what differs
// from object to object (the request's URL, the local port), so that the objects of one
// outage share one line.
func transportCause(err error) (string, bool) {
	var status apierrors.APIStatus
	if errors.As(err, &status) && !strings.HasPrefix(status.Status().Message, "unexpected error when reading response body") {
		return "", false // the API server answered
	}
	var why string
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		why = "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		strings.Contains(err.Error(), "unexpected EOF"):
		why = "connection closed mid-answer"
	case errors.As(err, &ne) && ne.Timeout():
		why = "timed out"
	default:
		var ue *url.Error
		if !errors.As(err, &ue) {
			return "", false
		}
		why, _, _ = strings.Cut(ue.Err.Error(), " - error from a previous attempt")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return why + " (" + u.Host + ")", true
		}
	}
	return why, true
}

func (e *DryRunError) Unwrap() []error { return e.Errs }

// WaitError is a failed health wait: kstatus's verdict and the pods' own reasons for the
// workloads that are not ready. It is ErrUnhealthy, unless the API server refused to show
// the objects (then it is of that class); a cancelled wait is not a WaitError.
type WaitError struct {
	Err     error
	Reasons []string
}

func (e *WaitError) Error() string {
	msg := "health wait: " + e.Err.Error()
	for _, r := range e.Reasons {
		msg += "\n  " + r
	}
	return msg
}

func (e *WaitError) Unwrap() error { return e.Err }

func (e *WaitError) Is(target error) bool {
	if target == ErrUnhealthy {
		var status apierrors.APIStatus
		return !errors.As(e.Err, &status)
	}
	return isClass(e.Err, target)
}

// apiMessage prefers the API server's own message over client-side wrapping.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}

// NotOwnedError is an existing object a deploy may not take over (see Owner.Admit): who
// owns it, and what would let the task take it.
type NotOwnedError struct {
	// Holder names the owner the object's metadata shows; "" when it has no Slipway owner.
	Holder string
	// ForeignRepository: the owner is another repository's task, or one whose repository
	// cannot be told; adopt does not take it over.
	ForeignRepository bool
}

func (e *NotOwnedError) Error() string {
	switch {
	case e.Holder == "":
		return "it exists and Slipway did not create it (no slipway.dev/owner label); " +
			"set adopt: true on the task to take it over (from then on its deploys change it and prune it when it is dropped from the manifests), " +
			"or remove it from the manifests"
	case e.ForeignRepository:
		return fmt.Sprintf("it belongs to %s, not to a task of this repository; "+
			"a repository never takes over what another may deploy, adopt: true included "+
			"(to hand it over, its owner drops it with prune: false and someone with cluster access removes its slipway.dev/owner label)", e.Holder)
	}
	return fmt.Sprintf("it belongs to %s, another task of this repository; set adopt: true on the task to move it here", e.Holder)
}

// Is makes every NotOwnedError ErrNotOwned.
func (e *NotOwnedError) Is(target error) bool { return target == ErrNotOwned }
