package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The headers of a webhook delivery (docs/notifications.md#webhook).
const (
	HeaderSignature = "X-Slipway-Signature-256" // sha256=HEX of HMAC-SHA256(key, TIMESTAMP + "." + BODY)
	HeaderTimestamp = "X-Slipway-Timestamp"     // Unix seconds when the attempt was signed
	HeaderEvent     = "X-Slipway-Event"         // run.succeeded, approval.needed, ...
	HeaderDelivery  = "X-Slipway-Delivery"      // the message id: the same on every attempt
)

// Sign returns the signature header's value of body sent at ts. The timestamp is signed
// with the body, so a captured delivery replayed later fails the receiver's age check.
func Sign(key []byte, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verification errors.
var (
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("timestamp outside the allowed age")
)

// Verify checks a delivery as a receiver should: the signature over timestamp and body, in
// constant time, and a timestamp no further than maxAge from now.
func Verify(key []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrStale
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts); d > maxAge || d < -maxAge {
		return ErrStale
	}
	want := Sign(key, ts, body)
	if !strings.HasPrefix(signature, "sha256=") || !hmac.Equal([]byte(want), []byte(signature)) {
		return ErrBadSignature
	}
	return nil
}
