package store

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// renderedObjects is a realistic, repetitive multi-document YAML of n Deployments.
func renderedObjects(n int, image string) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-%d
  namespace: game
  labels: {app.kubernetes.io/managed-by: slipway, slipway.dev/pipeline: deploy}
spec:
  replicas: 2
  selector: {matchLabels: {app: web-%d}}
  template:
    metadata: {labels: {app: web-%d}}
    spec:
      containers:
      - name: web
        image: %s
        ports: [{containerPort: 80}]
`, i, i, i, image)
	}
	return []byte(b.String())
}

func inventoryOf(n int) []InventoryEntry {
	inv := []InventoryEntry{{Group: "", Version: "v1", Kind: "Namespace", Name: "game"}}
	for i := 0; i < n; i++ {
		inv = append(inv, InventoryEntry{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "game", Name: fmt.Sprintf("web-%d", i),
			Digest: fmt.Sprintf("sha256:%064x", i), Fingerprint: fmt.Sprintf("uid-%d/sha256:%064x", i, i+1)})
	}
	return inv
}

func TestRevisionRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	objects := renderedObjects(200, "registry.local/game:alpha-1")
	inv := inventoryOf(200)

	saved, err := s.SaveRevision(ctx, NewRevision{
		Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local", Namespace: "game",
		Kind: DeployYAML, Objects: objects, Inventory: inv,
	})
	if err != nil {
		t.Fatal(err)
	}
	if saved.Status != RevisionApplied || saved.CreatedAt.IsZero() || !strings.HasPrefix(saved.ObjectsDigest, "sha256:") {
		t.Fatalf("saved %+v", saved.Status)
	}

	// Stored compressed: the row holds a zstd frame much smaller than the YAML.
	var blob []byte
	var encoding string
	var size int
	if err := s.reader.QueryRowContext(ctx, `SELECT objects, objects_encoding, objects_size FROM revisions`).Scan(&blob, &encoding, &size); err != nil {
		t.Fatal(err)
	}
	if encoding != "zstd" || !bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}) || size != len(objects) {
		t.Fatalf("stored encoding %q, magic % x, size %d", encoding, blob[:4], size)
	}
	if len(blob)*10 > len(objects) {
		t.Fatalf("compressed %d bytes to %d: less than 10×", len(objects), len(blob))
	}
	t.Logf("objects %d bytes stored as %d", len(objects), len(blob))

	got, err := s.GetRevision(ctx, testPipeline, 1, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Objects, objects) {
		t.Fatal("objects differ after the round trip")
	}
	if !reflect.DeepEqual(got.Inventory, inv) {
		t.Fatalf("inventory differs after the round trip: %d entries, first %+v", len(got.Inventory), got.Inventory[0])
	}
	if got.Cluster != "local" || got.Namespace != "game" || got.Kind != DeployYAML || got.Chart != nil || got.ObjectsDigest != saved.ObjectsDigest {
		t.Fatalf("revision fields %+v", got)
	}

	// A chart deploy keeps its release details; an empty inventory stays empty.
	mustRun(t, s, testPipeline)
	chart := &ChartRelease{Chart: "nginx", Version: "6.0.1-alpha.2", ValuesDigest: "sha256:feed", ReleaseRevision: 2}
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 2, Task: "nginx", Cluster: "local",
		Namespace: "web", Kind: DeployChart, Objects: []byte("{}"), Chart: chart}); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetRevision(ctx, testPipeline, 2, "nginx")
	if err != nil || c.Chart == nil || *c.Chart != *chart || len(c.Inventory) != 0 || string(c.Objects) != "{}" {
		t.Fatalf("chart revision %+v, %v", c, err)
	}

	// A corrupted row is reported, not handed out as objects.
	if _, err := s.writer.ExecContext(ctx, `UPDATE revisions SET objects_digest = 'sha256:00' WHERE task = 'web'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRevision(ctx, testPipeline, 1, "web"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt revision read: %v", err)
	}
}

func TestRevisionValidation(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	ok := NewRevision{Pipeline: testPipeline, BuildID: 1, Task: "web", Cluster: "local", Kind: DeployYAML, Objects: []byte("a: 1")}
	bad := map[string]func(*NewRevision){
		"no task":             func(r *NewRevision) { r.Task = "" },
		"no cluster":          func(r *NewRevision) { r.Cluster = "" },
		"unknown kind":        func(r *NewRevision) { r.Kind = "kustomize" },
		"yaml with chart":     func(r *NewRevision) { r.Chart = &ChartRelease{Chart: "x", Version: "1"} },
		"chart without chart": func(r *NewRevision) { r.Kind = DeployChart },
		"starts rolled back":  func(r *NewRevision) { r.Status = RevisionRolledBack },
		"inventory no name":   func(r *NewRevision) { r.Inventory = []InventoryEntry{{Version: "v1", Kind: "Service"}} },
	}
	for name, mutate := range bad {
		r := ok
		mutate(&r)
		if _, err := s.SaveRevision(ctx, r); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	missing := ok
	missing.BuildID = 7
	if _, err := s.SaveRevision(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("revision of missing run: %v, want ErrNotFound", err)
	}
	if _, err := s.SaveRevision(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveRevision(ctx, ok); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("second revision of one task: %v, want ErrAlreadyExists", err)
	}
	if revs, err := s.ListRevisions(ctx, testPipeline, 1); err != nil || len(revs) != 1 {
		t.Errorf("ListRevisions after refusals: %d, %v", len(revs), err)
	}
	if _, err := s.GetRevision(ctx, testPipeline, 1, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing revision: %v, want ErrNotFound", err)
	}
}

// The rollback target is the newest healthy revision of the task, whatever came after.
func TestLatestRevisionAndTransitions(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	save := func(buildID int64, task string, status RevisionStatus) {
		t.Helper()
		_, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: buildID, Task: task, Cluster: "local",
			Kind: DeployYAML, Objects: renderedObjects(1, fmt.Sprintf("img:%d", buildID)), Inventory: inventoryOf(int(buildID)), Status: status})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		mustRun(t, s, testPipeline)
	}
	save(1, "web", RevisionApplied)
	save(2, "web", RevisionApplied)
	save(2, "db", RevisionApplied)
	save(3, "web", RevisionApplied)
	save(4, "web", RevisionFailed) // dry-run failed: nothing applied

	for _, step := range []struct {
		build    int64
		task     string
		from, to RevisionStatus
	}{
		{1, "web", RevisionApplied, RevisionHealthy},
		{2, "web", RevisionApplied, RevisionHealthy},
		{2, "db", RevisionApplied, RevisionHealthy},
		{3, "web", RevisionApplied, RevisionFailed},
		{3, "web", RevisionFailed, RevisionRolledBack},
	} {
		if _, err := s.TransitionRevision(ctx, testPipeline, step.build, step.task, step.from, step.to, ""); err != nil {
			t.Fatal(err)
		}
	}

	latest, err := s.LatestRevision(ctx, testPipeline, "web", RevisionHealthy)
	if err != nil || latest.BuildID != 2 || latest.Task != "web" || len(latest.Inventory) != 3 {
		t.Fatalf("latest healthy web = #%d %s (%d objects), %v; want #2", latest.BuildID, latest.Task, len(latest.Inventory), err)
	}
	if !bytes.Contains(latest.Objects, []byte("img:2")) {
		t.Fatal("latest healthy revision carries another run's objects")
	}
	if r, err := s.LatestRevision(ctx, testPipeline, "web", RevisionFailed); err != nil || r.BuildID != 4 {
		t.Fatalf("latest failed web = #%d, %v; want #4", r.BuildID, err)
	}
	if _, err := s.LatestRevision(ctx, testPipeline, "db", RevisionFailed); !errors.Is(err, ErrNotFound) {
		t.Fatalf("latest failed db: %v, want ErrNotFound", err)
	}

	// Refused moves.
	_, err = s.TransitionRevision(ctx, testPipeline, 2, "web", RevisionHealthy, RevisionApplied, "")
	if !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("healthy → applied: %v, want ErrIllegalTransition", err)
	}
	_, err = s.TransitionRevision(ctx, testPipeline, 3, "web", RevisionApplied, RevisionHealthy, "")
	var te *TransitionError
	if !errors.As(err, &te) || te.Current != string(RevisionRolledBack) {
		t.Fatalf("applied → healthy of a rolled-back revision: %v, want a conflict naming rolled_back", err)
	}
	rb, err := s.TransitionRevision(ctx, testPipeline, 2, "web", RevisionHealthy, RevisionRolledBack, "rolled back to BUILD_ID 1")
	if err != nil || rb.Status != RevisionRolledBack || rb.Reason != "rolled back to BUILD_ID 1" || rb.UpdatedAt.Before(rb.CreatedAt) {
		t.Fatalf("healthy → rolled_back: %+v, %v", rb.Status, err)
	}
	if latest, err := s.LatestRevision(ctx, testPipeline, "web", RevisionHealthy); err != nil || latest.BuildID != 1 {
		t.Fatalf("after rolling #2 back, latest healthy = #%d, %v; want #1", latest.BuildID, err)
	}

	revs, err := s.ListRevisions(ctx, testPipeline, 2)
	if err != nil || len(revs) != 2 || revs[0].Task != "web" || revs[1].Task != "db" {
		t.Fatalf("ListRevisions(2) = %d, %v", len(revs), err)
	}
	if revs, err := s.ListRevisions(ctx, testPipeline, 5); err != nil || len(revs) != 0 {
		t.Fatalf("ListRevisions of a run without deploys = %d, %v", len(revs), err)
	}
	if _, err := s.ListRevisions(ctx, testPipeline, 6); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ListRevisions of a missing run: %v, want ErrNotFound", err)
	}
}

// A revision keeps its task's prune setting and which objects it adopted, and the current
// revision on one cluster ignores the task's revisions on others: a task moved between
// clusters prunes on each only what it left there.
func TestRevisionOwnershipAndClusters(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	save := func(buildID int64, cluster string, prune bool, inv []InventoryEntry) {
		t.Helper()
		_, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: buildID, Task: "web", Cluster: cluster,
			Kind: DeployYAML, Objects: renderedObjects(1, fmt.Sprintf("img:%d", buildID)), Inventory: inv, Prune: prune})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		mustRun(t, s, testPipeline)
	}
	adopted := inventoryOf(2)
	adopted[1].Adopted = true
	save(1, "east", false, adopted)
	save(2, "west", true, inventoryOf(1))

	got, err := s.GetRevision(ctx, testPipeline, 1, "web")
	if err != nil || got.Prune || !reflect.DeepEqual(got.Inventory, adopted) {
		t.Fatalf("revision 1: prune %v, inventory %+v, %v; want prune off and entry 1 adopted", got.Prune, got.Inventory, err)
	}
	if got, err := s.GetRevision(ctx, testPipeline, 2, "web"); err != nil || !got.Prune {
		t.Fatalf("revision 2: prune %v, %v; want on", got.Prune, err)
	}
	if east, err := s.CurrentRevisionOn(ctx, testPipeline, "web", "east"); err != nil || east.BuildID != 1 {
		t.Fatalf("current on east = #%d, %v; want #1 (#2 is on west)", east.BuildID, err)
	}
	if west, err := s.CurrentRevisionOn(ctx, testPipeline, "web", "west"); err != nil || west.BuildID != 2 {
		t.Fatalf("current on west = #%d, %v; want #2", west.BuildID, err)
	}
	// A deploy's basis, read at once: the current revision on its cluster and the newest
	// anywhere, inventories without objects.
	basis := func(cluster string) (current, newest int64) {
		t.Helper()
		b, err := s.DeployBasis(ctx, testPipeline, "web", cluster)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*Revision{b.Current, b.Newest} {
			if r != nil && (r.Objects != nil || len(r.Inventory) == 0) {
				t.Fatalf("basis on %s: revision #%d with %d bytes of objects and %d inventory entries; want none and some",
					cluster, r.BuildID, len(r.Objects), len(r.Inventory))
			}
		}
		if b.Current != nil {
			current = b.Current.BuildID
			if !reflect.DeepEqual(b.Previous(), b.Current.Inventory) {
				t.Fatalf("basis on %s: Previous is not the current revision's inventory", cluster)
			}
		} else if b.Previous() != nil {
			t.Fatalf("basis on %s: Previous %v without a current revision", cluster, b.Previous())
		}
		if b.Newest != nil {
			newest = b.Newest.BuildID
		}
		return current, newest
	}
	if cur, newest := basis("east"); cur != 1 || newest != 2 {
		t.Fatalf("basis on east: current #%d newest #%d; want #1 and #2", cur, newest)
	}
	if b, _ := s.DeployBasis(ctx, testPipeline, "web", "east"); !reflect.DeepEqual(b.Current.Inventory, adopted) {
		t.Fatalf("basis on east: inventory %+v, want %+v", b.Current.Inventory, adopted)
	}
	// A rolled-back revision is not what the task left there.
	if _, err := s.TransitionRevision(ctx, testPipeline, 2, "web", RevisionApplied, RevisionRolledBack, ""); err != nil {
		t.Fatal(err)
	}
	if cur, newest := basis("west"); cur != 0 || newest != 1 {
		t.Fatalf("basis on west after #2 was rolled back: current #%d newest #%d; want none and #1", cur, newest)
	}
	if cur, newest := basis("north"); cur != 0 || newest != 1 {
		t.Fatalf("basis on a cluster never deployed to: current #%d newest #%d; want none and #1", cur, newest)
	}
	if b, err := s.DeployBasis(ctx, PipelineRef{Repository: testPipeline.Repository, Name: "other"}, "web", "east"); err != nil || b.Current != nil || b.Newest != nil {
		t.Fatalf("basis of a pipeline without revisions: %+v, %v; want empty", b, err)
	}
	// The newest is the current one: one record, its inventory read once.
	if b, err := s.DeployBasis(ctx, testPipeline, "web", "east"); err != nil || b.Current == nil || b.Newest != b.Current {
		t.Fatalf("basis on east with #1 newest: %+v, %v; want Newest to be Current", b, err)
	}
	// A failed deploy that applied nothing (Helm refused a chart) is the newest, not what
	// the task left on the cluster.
	if _, err := s.SaveRevision(ctx, NewRevision{Pipeline: testPipeline, BuildID: 3, Task: "web", Cluster: "east",
		Kind: DeployChart, Chart: &ChartRelease{Chart: "web", Version: "1.0.0"}, Status: RevisionFailed, Reason: "refused"}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.DeployBasis(ctx, testPipeline, "web", "east"); err != nil || b.Current == nil || b.Current.BuildID != 1 ||
		b.Newest == nil || b.Newest.BuildID != 3 || len(b.Newest.Inventory) != 0 {
		t.Fatalf("basis on east after a failed deploy that applied nothing: %+v, %v; want current #1, newest #3 with no inventory", b, err)
	}
	if _, err := s.CurrentRevisionOn(ctx, testPipeline, "web", "west"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("current on west after its only revision was rolled back: %v; want ErrNotFound", err)
	}
	if _, err := s.CurrentRevisionOn(ctx, testPipeline, "web", "north"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("current on a cluster never deployed to: %v; want ErrNotFound", err)
	}

	// Rows written before schema version 12 pruned on rollback, and still do.
	if onPostgres() {
		return // the PostgreSQL schema never lacked the column (its version 12 adds it with the default)
	}
	if _, err := s.writer.ExecContext(ctx, `ALTER TABLE revisions DROP COLUMN prune`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writer.ExecContext(ctx, `ALTER TABLE revisions ADD COLUMN prune INTEGER NOT NULL DEFAULT 1`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetRevision(ctx, testPipeline, 1, "web"); err != nil || !got.Prune {
		t.Fatalf("an old row: prune %v, %v; want on", got.Prune, err)
	}
}

// A deploy's log lines ride with its revision: stored in the revision's write, and not at
// all when the revision is refused.
func TestSaveRevisionStoresTheTasksLines(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	run := mustRun(t, s, testPipeline)
	nr := NewRevision{Pipeline: testPipeline, BuildID: run.BuildID, Task: "web", Cluster: "local", Namespace: "game",
		Kind: DeployYAML, Objects: renderedObjects(1, "x"), Inventory: inventoryOf(1),
		Logs: []LogLine{{Stream: StreamSystem, Text: "rendered 2 objects"}, {Stream: StreamSystem, Text: "2 unchanged"}}}
	if _, err := s.SaveRevision(ctx, nr); err != nil {
		t.Fatal(err)
	}
	lines, err := s.ReadLogs(ctx, testPipeline, run.BuildID, LogQuery{Tasks: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].Text != "rendered 2 objects" || lines[1].Text != "2 unchanged" || lines[0].Task != "web" {
		t.Fatalf("lines %+v, want the revision's two lines of task web", lines)
	}
	nr.Logs = []LogLine{{Stream: StreamSystem, Text: "again"}}
	if _, err := s.SaveRevision(ctx, nr); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("a second revision of the task: %v, want ErrAlreadyExists", err)
	}
	if lines, err := s.ReadLogs(ctx, testPipeline, run.BuildID, LogQuery{Tasks: []string{"web"}}); err != nil || len(lines) != 2 {
		t.Fatalf("after a refused revision: %+v, %v; want its line not stored", lines, err)
	}
}
