package testenv

import "testing"

// The kernel hands a just-closed port to the next bind often enough that 300 picks in a
// row repeat one without the record of ports handed out.
func TestFreeAddressNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 300 {
		a := FreeAddress(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
	if ports := FreePorts(t, 3); ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Fatalf("FreePorts(3) = %v, want distinct ports", ports)
	}
}
