package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Parse verifies a delivery with secret and returns what it announces. provider is
// github, gitlab, gitea or generic; h are the request headers and body the raw request
// body (already limited to MaxBody). Nothing in body is read before the signature (GitLab:
// the token) verified. Every error is an *Error; an unsupported event (a ping, an issue
// comment) is one with Reason ReasonUnsupportedEvent, to be answered 202.
func Parse(provider string, secret []byte, h http.Header, body []byte) (*Event, error) {
	if _, known := deliveryHeaders[provider]; !known {
		return nil, newError(ReasonUnknownProvider, provider, "unknown webhook provider %s", quote(provider))
	}
	if err := verify(provider, secret, h, body); err != nil {
		return nil, err
	}
	id, err := deliveryID(provider, h, body)
	if err != nil {
		return nil, err
	}
	var ev *Event
	switch provider {
	case GitHub:
		ev, err = parseGitHub(h, body)
	case GitLab:
		ev, err = parseGitLab(h, body)
	case Gitea:
		ev, err = parseGitea(h, body)
	case Generic:
		ev, err = parseGeneric(h, body)
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.DeliveryID = id
		}
		return nil, err
	}
	ev.Provider, ev.DeliveryID = provider, id
	return ev, nil
}

// eventHeader returns the forge's event name, which must be present.
func eventHeader(provider, name string, h http.Header) (string, error) {
	event := strings.TrimSpace(h.Get(name))
	if event == "" {
		return "", badPayload(provider, "", nil, "no %s header", name)
	}
	return event, nil
}

// decodeJSON decodes body into v; strict rejects unknown fields (for the schema Slipway
// defines itself, where an unknown field is a typo).
func decodeJSON(provider, event string, body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badPayload(provider, event, nil, "empty body")
	}
	if body[0] != '{' && bytes.HasPrefix(body, []byte("payload=")) {
		return badPayload(provider, event, nil, "form-encoded body: set the webhook's content type to application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return badPayload(provider, event, err, "decoding the %s payload", bound(event))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badPayload(provider, event, nil, "trailing data after the JSON payload")
	}
	return nil
}
