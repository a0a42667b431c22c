package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// maxDeliveryID bounds the id the store keeps; forges send UUIDs (36 characters).
const maxDeliveryID = 128

// deliveryHeaders lists, per provider, the headers that carry a delivery id, preferred
// first. GitLab's Idempotency-Key stays the same when a delivery is retried (GitLab 17.4+);
// X-Gitlab-Event-UUID names the event.
var deliveryHeaders = map[string][]string{
	GitHub:  {"X-GitHub-Delivery"},
	Gitea:   {"X-Gitea-Delivery"},
	GitLab:  {"Idempotency-Key", "X-Gitlab-Event-UUID"},
	Generic: {"X-Slipway-Delivery"},
}

// deliveryID returns the forge's delivery id or, when it sent none, one derived from the
// body, so a redelivery of the same body still deduplicates.
func deliveryID(provider string, h http.Header, body []byte) (string, error) {
	for _, name := range deliveryHeaders[provider] {
		id := strings.TrimSpace(h.Get(name))
		if id == "" {
			continue
		}
		if len(id) > maxDeliveryID || !printable(id) {
			return "", badPayload(provider, "", nil, "%s is not a short printable id", name)
		}
		return id, nil
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
