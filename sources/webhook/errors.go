package webhook

import (
	"errors"
	"fmt"
	"net/http"
)

// Reason classifies a rejected delivery; its string is meant as a metrics label.
type Reason string

const (
	// ReasonMissingSignature: no signature (or token) header, or an empty one.
	ReasonMissingSignature Reason = "missing_signature"
	// ReasonBadSignature: the signature or token does not match the secret.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonNoSecret: the configured secret is empty; nothing can verify against it.
	ReasonNoSecret Reason = "no_secret"
	// ReasonBadPayload: verified, but the body or a header is not what the forge documents.
	ReasonBadPayload Reason = "bad_payload"
	// ReasonUnsupportedEvent: verified and well-formed, but not an event Slipway acts on
	// (ping, issue comments, label changes, ...). Not an error to the forge.
	ReasonUnsupportedEvent Reason = "unsupported_event"
	// ReasonBadMediaType: the delivery is not application/json; refused before its body is read.
	ReasonBadMediaType Reason = "bad_media_type"
	// ReasonUnknownProvider: the provider name is not github, gitlab, gitea or generic.
	ReasonUnknownProvider Reason = "unknown_provider"
)

// Error is every error Parse returns. Use errors.As to get at it.
type Error struct {
	Reason   Reason
	Provider string
	// Event is the forge's event name (and action, e.g. "pull_request.labeled") when it
	// was read; empty before verification.
	Event string
	// DeliveryID is set once the signature verified.
	DeliveryID string
	msg        string
	err        error
}

func (e *Error) Error() string {
	s := "webhook " + e.Provider + ": " + string(e.Reason) + ": " + e.msg
	if e.err != nil {
		// A JSON error can quote a field name from the body; keep it short.
		cause := e.err.Error()
		if len(cause) > 160 {
			cause = cause[:160] + "..."
		}
		s += ": " + cause
	}
	return s
}

// Unwrap returns the underlying cause, e.g. a JSON syntax error.
func (e *Error) Unwrap() error { return e.err }

// HTTPStatus is the answer the server gives the forge for this error: 401 when the
// delivery did not verify (forges show it, and retrying will not help), 202 for an event
// Slipway ignores (so the forge does not mark the hook as failing), 400 for a malformed
// payload, 415 for a body that is not JSON and 500 for a configuration error on Slipway's side.
func (e *Error) HTTPStatus() int {
	switch e.Reason {
	case ReasonMissingSignature, ReasonBadSignature, ReasonNoSecret:
		return http.StatusUnauthorized
	case ReasonUnsupportedEvent:
		return http.StatusAccepted
	case ReasonBadPayload:
		return http.StatusBadRequest
	case ReasonBadMediaType:
		return http.StatusUnsupportedMediaType
	default:
		return http.StatusInternalServerError
	}
}

// ReasonOf returns the Reason of a webhook error, or "" when err is nil or not one.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(r Reason, provider, format string, args ...any) *Error {
	return &Error{Reason: r, Provider: provider, msg: fmt.Sprintf(format, args...)}
}

// badPayload returns a bad-payload error around cause (a JSON error, typically).
func badPayload(provider, event string, cause error, format string, args ...any) *Error {
	e := newError(ReasonBadPayload, provider, format, args...)
	e.Event, e.err = bound(event), cause
	return e
}

func unsupported(provider, event string) *Error {
	e := newError(ReasonUnsupportedEvent, provider, "event %s is not used", quote(event))
	e.Event = bound(event)
	return e
}

// quote shows an untrusted header value in an error, bounded in length.
func quote(s string) string { return fmt.Sprintf("%q", bound(s)) }

// bound cuts an untrusted value that ends up in errors, logs or labels.
func bound(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
