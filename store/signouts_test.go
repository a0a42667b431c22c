package store

import (
	"testing"
	"time"
)

// TestSignOutHoldsUntilExpiry: a signed-out session is refused through another handle on the
// same store (another replica, a restarted daemon), and its row goes once it has expired.
func TestSignOutHoldsUntilExpiry(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, loc := openTest(t, WithClock(clock))
	ctx := testCtx(t)
	if err := s.SignOut(ctx, "n1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.SignOut(ctx, "n1", now.Add(time.Hour)); err != nil {
		t.Fatalf("signing out twice: %v", err)
	}
	other := openAt(t, loc, WithClock(clock))
	for nonce, want := range map[string]bool{"n1": true, "n2": false} {
		got, err := other.SignedOut(ctx, nonce)
		if err != nil || got != want {
			t.Errorf("SignedOut(%s) = %v, %v; want %v", nonce, got, err, want)
		}
	}
	if err := s.SignOut(ctx, "", now); err == nil {
		t.Error("an empty nonce was accepted")
	}
	now = now.Add(2 * time.Hour)
	if err := s.SignOut(ctx, "n2", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM ui_signouts`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("rows = %d, %v: the expired sign-out should be gone and n2 kept", rows, err)
	}
}
