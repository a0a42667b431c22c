package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

func TestObjectErrorClasses(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web",
		field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0")})
	classes := []error{ErrConflict, ErrInvalid, ErrForbidden, ErrUnhealthy}
	cases := []struct {
		name  string
		cause error
		want  error // the one class it is; nil for none
		is    func(error) bool
	}{
		{"conflict", apierrors.NewConflict(deployments, "web", errors.New("the object has been modified")), ErrConflict, apierrors.IsConflict},
		{"invalid", invalid, ErrInvalid, apierrors.IsInvalid},
		{"bad request", apierrors.NewBadRequest("resourceVersion should not be set on objects to be created"), ErrInvalid, apierrors.IsBadRequest},
		{"forbidden", apierrors.NewForbidden(deployments, "web", errors.New(`User "viewer" cannot patch resource "deployments"`)), ErrForbidden, apierrors.IsForbidden},
		{"not found", apierrors.NewNotFound(deployments, "web"), nil, apierrors.IsNotFound},
		{"cancelled", fmt.Errorf(`Patch "https://api/x": %w`, context.Canceled), nil, func(err error) bool { return errors.Is(err, context.Canceled) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Wrapped once more, as ssa's Delete and client-go wrap the status error.
			err := error(&ObjectError{Op: OpApply, Object: "Deployment/shop/web", File: "k8s/web.yaml", Doc: 2,
				Err: fmt.Errorf("Deployment/shop/web delete failed: %w", c.cause)})
			for _, class := range classes {
				if got := errors.Is(err, class); got != (class == c.want) {
					t.Errorf("errors.Is(err, %v) = %v, want %v", class, got, class == c.want)
				}
			}
			if !c.is(err) {
				t.Errorf("the cause's own test no longer sees it through the ObjectError")
			}
			var oe *ObjectError
			if !errors.As(err, &oe) || oe.Object != "Deployment/shop/web" || oe.Op != OpApply {
				t.Errorf("errors.As *ObjectError = %+v", oe)
			}
		})
	}
}

func TestObjectErrorMessage(t *testing.T) {
	cause := apierrors.NewForbidden(deployments, "web", errors.New(`User "viewer" cannot delete resource "deployments"`))
	// The API server's message, not the wrapping ssa or client-go added.
	err := &ObjectError{Op: OpPrune, Object: "Deployment/shop/web", Err: fmt.Errorf("Deployment/shop/web delete failed: %w", cause)}
	want := `Deployment/shop/web prune failed: deployments.apps "web" is forbidden: User "viewer" cannot delete resource "deployments"`
	if err.Error() != want {
		t.Errorf("message\n got: %s\nwant: %s", err, want)
	}
	err = &ObjectError{Op: OpApply, Object: "ConfigMap/shop/env", File: "k8s/env.yaml", Doc: 3, Err: errors.New("connection refused")}
	want = "ConfigMap/shop/env (k8s/env.yaml, document 3) apply failed: connection refused"
	if err.Error() != want {
		t.Errorf("message\n got: %s\nwant: %s", err, want)
	}
}

// A dry-run reports every refused object; each answers for itself, and the message keeps
// the heading and one line per object.
func TestDryRunErrorJoinsClasses(t *testing.T) {
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "broken",
		field.ErrorList{field.Invalid(field.NewPath("data"), "x", "bad key")})
	forbidden := apierrors.NewForbidden(deployments, "web", errors.New("no"))
	var err error = &DryRunError{Errs: []error{
		&ObjectError{Op: OpDryRun, Object: "ConfigMap/shop/broken", File: "env.yaml", Doc: 3, Err: invalid},
		&ObjectError{Op: OpDryRun, Object: "Deployment/shop/web", File: "web.yaml", Doc: 1, Err: forbidden},
	}}
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrForbidden) || errors.Is(err, ErrConflict) {
		t.Errorf("classes of the joined dry-run error: invalid %v, forbidden %v, conflict %v",
			errors.Is(err, ErrInvalid), errors.Is(err, ErrForbidden), errors.Is(err, ErrConflict))
	}
	if !apierrors.IsInvalid(err) {
		t.Errorf("apierrors.IsInvalid does not see the first cause")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"server-side dry-run failed, nothing was applied:",
		"  ConfigMap/shop/broken (env.yaml, document 3): " + invalid.ErrStatus.Message,
		"  Deployment/shop/web (web.yaml, document 1): " + forbidden.ErrStatus.Message,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("message\n got: %s\nwant: %s", err, strings.Join(want, "\n"))
	}
	// Prune's errors are joined with errors.Join: each still answers.
	joined := errors.Join(
		&ObjectError{Op: OpPrune, Object: "Deployment/shop/a", Err: forbidden},
		&ObjectError{Op: OpPrune, Object: "Deployment/shop/b", Err: apierrors.NewConflict(deployments, "b", errors.New("modified"))},
	)
	if !errors.Is(joined, ErrForbidden) || !errors.Is(joined, ErrConflict) || errors.Is(joined, ErrInvalid) {
		t.Errorf("classes of joined prune errors wrong: %v", joined)
	}
}

// Objects the API server never answered for share one line: a cluster that is down is one
// cause, not three hundred.
func TestDryRunErrorFoldsAnUnreachableServer(t *testing.T) {
	failed := func(name string, err error) error {
		return &url.Error{Op: "Patch", URL: "https://127.0.0.1:6443/api/v1/namespaces/shop/configmaps/" + name + "?dryRun=All", Err: err}
	}
	refused := func(name string) error {
		return failed(name, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	}
	reset := func(name string, port int) error {
		return failed(name, &net.OpError{Op: "read", Net: "tcp", Source: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
			Err: os.NewSyscallError("read", syscall.ECONNRESET)})
	}
	invalid := apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "broken",
		field.ErrorList{field.Invalid(field.NewPath("data"), "x", "bad key")})
	err := &DryRunError{Errs: []error{
		&ObjectError{Op: OpDryRun, Object: "ConfigMap/shop/a", File: "all.yaml", Doc: 1, Err: refused("a")},
		&ObjectError{Op: OpDryRun, Object: "ConfigMap/shop/broken", File: "all.yaml", Doc: 2, Err: invalid},
		&ObjectError{Op: OpDryRun, Object: "ConfigMap/shop/b", File: "all.yaml", Doc: 3, Err: reset("b", 43888)},
		&ObjectError{Op: OpDryRun, Object: "ConfigMap/shop/c", File: "all.yaml", Doc: 4, Err: refused("c")},
		&ObjectError{Op: OpLookup, Object: "ConfigMap/shop/d", File: "all.yaml", Doc: 5, Err: reset("d", 43904)},
		&ObjectError{Op: OpDryRun, Object: "ConfigMap/shop/e", File: "all.yaml", Doc: 6,
			Err: fmt.Errorf("unexpected error when reading response body. Please retry. Original error: %w", io.ErrUnexpectedEOF)},
	}}
	want := strings.Join([]string{
		"server-side dry-run failed, nothing was applied:",
		"  ConfigMap/shop/broken (all.yaml, document 2): " + invalid.ErrStatus.Message,
		"  2 objects, from ConfigMap/shop/a (all.yaml, document 1) to ConfigMap/shop/c (all.yaml, document 4): " +
			"the API server did not answer: connection refused (127.0.0.1:6443)",
		"  2 objects, from ConfigMap/shop/b (all.yaml, document 3) to ConfigMap/shop/d (all.yaml, document 5): " +
			"the API server did not answer: connection reset (127.0.0.1:6443)",
		"  ConfigMap/shop/e (all.yaml, document 6): the API server did not answer: connection closed mid-answer",
	}, "\n")
	if err.Error() != want {
		t.Errorf("message\n got: %s\nwant: %s", err, want)
	}
}

// A whole manifest set refused lists the first objects and counts the rest.
func TestDryRunErrorCapsItsLines(t *testing.T) {
	var errs []error
	for i := range 25 {
		errs = append(errs, &ObjectError{Op: OpDryRun, Object: fmt.Sprintf("ConfigMap/shop/c%d", i), File: "all.yaml", Doc: i + 1,
			Err: apierrors.NewForbidden(deployments, "c", errors.New("no"))})
	}
	lines := strings.Split((&DryRunError{Errs: errs}).Error(), "\n")
	if len(lines) != 1+maxReasonLines+1 || lines[len(lines)-1] != "  and 5 more objects" {
		t.Errorf("%d lines, last %q; want the heading, %d objects and a count of the rest", len(lines), lines[len(lines)-1], maxReasonLines)
	}
}

func TestWaitErrorClasses(t *testing.T) {
	var err error = &WaitError{Err: errors.New("timeout waiting for: [Deployment/shop/web status: 'InProgress']"),
		Reasons: []string{"Deployment/shop/web: pod web-1: not scheduled: Unschedulable: no nodes"}}
	if !errors.Is(err, ErrUnhealthy) || errors.Is(err, ErrForbidden) {
		t.Errorf("a failed wait: unhealthy %v, forbidden %v", errors.Is(err, ErrUnhealthy), errors.Is(err, ErrForbidden))
	}
	want := "health wait: timeout waiting for: [Deployment/shop/web status: 'InProgress']\n  Deployment/shop/web: pod web-1: not scheduled: Unschedulable: no nodes"
	if err.Error() != want {
		t.Errorf("message\n got: %s\nwant: %s", err, want)
	}
	// A wait that could not look is not a verdict on health.
	err = &WaitError{Err: apierrors.NewForbidden(deployments, "web", errors.New("no"))}
	if errors.Is(err, ErrUnhealthy) || !errors.Is(err, ErrForbidden) {
		t.Errorf("a refused wait: unhealthy %v, forbidden %v", errors.Is(err, ErrUnhealthy), errors.Is(err, ErrForbidden))
	}
}
