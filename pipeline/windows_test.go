package pipeline

import (
	"testing"
	"time"
)

func TestWindowAt(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	hours := func(h int) Duration { return Duration{time.Duration(h) * time.Hour} }
	workdays := Window{Kind: WindowAllow, Cron: "0 9 * * 1-5", Duration: hours(8), Timezone: "Europe/Berlin"}
	friday := Window{Kind: WindowDeny, Cron: "0 15 * * 5", Duration: hours(3), Timezone: "Europe/Berlin"}
	for _, tc := range []struct {
		name    string
		windows []Window
		t       string
		open    bool
		recheck string
	}{
		{"no windows", nil, "2026-12-05T03:00:00Z", true, ""},
		{"inside allow (Berlin is UTC+1)", []Window{workdays}, "2026-12-01T09:30:00Z", true, ""},
		{"before allow opens", []Window{workdays}, "2026-12-01T07:59:00Z", false, "2026-12-01T09:00:00+01:00"},
		{"after allow closes", []Window{workdays}, "2026-12-01T16:00:00Z", false, "2026-12-02T09:00:00+01:00"},
		{"weekend", []Window{workdays}, "2026-12-05T10:00:00Z", false, "2026-12-07T09:00:00+01:00"},
		{"deny inside allow", []Window{workdays, friday}, "2026-12-04T14:30:00Z", false, "2026-12-04T18:00:00+01:00"},
		{"allow before deny", []Window{workdays, friday}, "2026-12-04T13:59:00Z", true, ""},
		{"deny only, outside it", []Window{friday}, "2026-12-03T15:00:00Z", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Environment{Name: "prod", Windows: tc.windows}
			got := e.WindowAt(at(tc.t))
			if got.Open != tc.open {
				t.Fatalf("open = %v (%s), want %v", got.Open, got.Why, tc.open)
			}
			if !tc.open {
				if !got.Recheck.Equal(at(tc.recheck)) {
					t.Errorf("recheck %s, want %s", got.Recheck, tc.recheck)
				}
				if got.Why == "" {
					t.Error("closed without a reason")
				}
			}
		})
	}
}
