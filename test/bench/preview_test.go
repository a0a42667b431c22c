package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// Shape of the preview benchmark.
const (
	previewPushes    = 20              // measured pushes to the pull request (after one warm-up push)
	previewTargetP95 = 3 * time.Second // push → preview comment posted, p95
	previewPoll      = 25 * time.Millisecond
)

// TestBenchPreview measures pull-request previews on the 2048 example (build-image, then
// deploy-yaml of a Deployment, Service and Ingress, deployed once from master): the time
// from `git push` to the pull request's branch returning until the preview comment on the
// real Gitea shows that head, and until slipway/preview is set on it.
func TestBenchPreview(t *testing.T) {
	env := testenv.Get(t)
	bin := buildSlipwayBinary(t, env)
	ns := env.Namespace(t)
	admin := env.Gitea(t)
	owner := admin.CreateUser(t, "preview")
	as := admin.As(owner)
	repo := as.CreateRepo(t, "", "bench-preview")
	pushURL := as.PushURL(repo.Owner.Login, repo.Name) // carries a token: never printed
	tmp := t.TempDir()
	secret := "bench-preview-hook"
	for name, v := range map[string]string{"gitea-user": owner.Name, "gitea-password": owner.Password, "hook-secret": secret, "forge-token": owner.Token} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sdk, err := gitea.NewClient(as.URL, gitea.SetToken(owner.Token))
	if err != nil {
		t.Fatal(err)
	}

	// The example as it is, mapped to this environment: its registry, cluster and
	// namespace; the Dockerfile's base is the environment's; pull requests are previewed.
	files := map[string]string{}
	root := filepath.Join(env.Root, "examples", "2048-yaml")
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	df := files["Dockerfile"]
	files["Dockerfile"] = "FROM " + env.BaseImage + df[strings.Index(df, "\n"):]
	pl := files[".pipeline.yaml"]
	for from, to := range map[string]string{
		"REGISTRY: hub.ecns.io":   "REGISTRY: " + env.Registry,
		"cluster: seconddevops":   "cluster: bench",
		"namespace: seconddevops": "namespace: " + ns,
		"triggers:\n":             "triggers:\n  pullRequest: {}\n",
		"wait: 5m":                "wait: 60s",
		"drift: correct":          "drift: report",
	} {
		if !strings.Contains(pl, from) {
			t.Fatalf("examples/2048-yaml/.pipeline.yaml no longer contains %q", from)
		}
		pl = strings.Replace(pl, from, to, 1)
	}
	files[".pipeline.yaml"] = pl
	manifests := files["2048_env.yaml"]
	replicas := func(n int) string {
		return strings.Replace(manifests, "spec:\n  selector:", fmt.Sprintf("spec:\n  replicas: %d\n  selector:", n), 1)
	}

	work := &benchWork{t: t, dir: filepath.Join(tmp, "work"), redact: []string{pushURL, owner.Token, owner.Password}}
	work.git("init", "-q", "--initial-branch=master", ".")
	work.commit("the 2048 example", files)
	work.git("push", "-q", pushURL, "master")

	dir := filepath.Join(tmp, "daemon")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "slipway.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`dataDir: %[1]s/data
listen: %[2]s
repositories:
  - name: bench-preview
    url: %[3]s
    branch: master
    poll: 0s
    auth: {usernameFile: %[4]s/gitea-user, passwordFile: %[4]s/gitea-password}
    webhook: {type: gitea, secretFile: %[4]s/hook-secret}
    forge: {type: gitea, url: %[5]q, tokenFile: %[4]s/forge-token}
    policy: {clusters: ['*'], namespaces: ['*'], registries: ['*'], push: ['*']}
clusters:
  - name: bench
    kubeconfig: %[6]s
registry:
  default: %[7]s
  insecure: [%[7]s]
`, dir, testenv.FreeAddress(t), as.CloneURL(repo.Owner.Login, repo.Name), tmp, as.URL, env.Kubeconfig, env.Registry)), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startTrigServe(t, bin, cfg, dir)
	admin.CreateHook(t, repo.Owner.Login, repo.Name, testenv.GiteaHookOptions{URL: "http://" + d.listen + "/hooks/bench-preview",
		Secret: secret, Events: []string{"push", "pull_request", "pull_request_sync"}})
	st := d.openStore(t)
	waitRun(t, d, st, store.PipelineRef{Repository: "bench-preview", Name: "jack-2048"}, work.head(), 3*time.Minute,
		func(r store.Run) bool { return r.Status == store.RunSucceeded })
	_ = st.Close()

	work.git("checkout", "-q", "-b", "scale")
	work.commit("replicas 2", map[string]string{"2048_env.yaml": replicas(2)})
	work.git("push", "-q", pushURL, "scale")
	pr, _, err := sdk.CreatePullRequest(repo.Owner.Login, repo.Name, gitea.CreatePullRequestOption{Head: "scale", Base: "master", Title: "Scale"})
	if err != nil {
		t.Fatal(err)
	}
	// The comment's head line names the head it previewed; the status is set after it.
	headLine := regexp.MustCompile(`Slipway preview of ([0-9a-f]{7})`)
	comment := func() string {
		cs, _, err := sdk.ListIssueComments(repo.Owner.Login, repo.Name, pr.Index, gitea.ListIssueCommentOptions{})
		if err != nil {
			d.fail(t, "list comments: %v", err)
		}
		n, short := 0, ""
		for _, c := range cs {
			if strings.Contains(c.Body, "<!-- slipway:preview -->") {
				n++
				if m := headLine.FindStringSubmatch(c.Body); m != nil {
					short = m[1]
				}
			}
		}
		if n > 1 {
			d.fail(t, "%d preview comments on pull request #%d, want one", n, pr.Index)
		}
		return short
	}
	status := func(sha string) gitea.StatusState {
		ss, _, err := sdk.ListStatuses(repo.Owner.Login, repo.Name, sha, gitea.ListStatusesOption{})
		if err != nil {
			d.fail(t, "list statuses: %v", err)
		}
		for _, s := range ss {
			if s.Context == "slipway/preview" && s.State != gitea.StatusPending {
				return s.State
			}
		}
		return ""
	}
	type sample struct{ comment, status time.Duration }
	wait := func(head string, pushed time.Time) sample {
		var s sample
		deadline := pushed.Add(60 * time.Second)
		for s.comment == 0 || s.status == 0 {
			if s.comment == 0 && comment() == head[:7] {
				s.comment = time.Since(pushed)
			}
			if s.status == 0 {
				switch status(head) {
				case "":
				case gitea.StatusSuccess:
					s.status = time.Since(pushed)
				default:
					d.fail(t, "slipway/preview of %s is not success", head[:7])
				}
			}
			if time.Now().After(deadline) {
				d.fail(t, "no preview of %s within 60s", head[:7])
			}
			time.Sleep(previewPoll) // polling Gitea: the measurement's resolution
		}
		return s
	}
	wait(work.head(), time.Now()) // the pull request's first preview: warm-up, not counted
	var samples []sample
	for i := 0; i <= previewPushes; i++ {
		head := work.commit(fmt.Sprintf("replicas %d", i+3), map[string]string{"2048_env.yaml": replicas(i + 3)})
		work.git("push", "-q", pushURL, "scale")
		s := wait(head, time.Now())
		if i > 0 {
			samples = append(samples, s)
		}
	}

	own := previewDurations(t, d.logPath, previewPushes)

	pick := func(f func(sample) time.Duration) []time.Duration {
		out := make([]time.Duration, len(samples))
		for i, s := range samples {
			out[i] = f(s)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	commentLat, statusLat := pick(func(s sample) time.Duration { return s.comment }), pick(func(s sample) time.Duration { return s.status })
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
	var b strings.Builder
	fmt.Fprintf(&b, "\nPull request push → preview, %d pushes to one pull request on the 2048 example (build-image + deploy-yaml of 3 objects, "+
		"deployed from master; each push changes the Deployment's replicas; one warm-up push not counted; Gitea polled every %s)\n\n",
		previewPushes, previewPoll)
	b.WriteString("| measure | p50 | p95 | min | max |\n|---|---:|---:|---:|---:|\n")
	for _, r := range []struct {
		name string
		v    []time.Duration
	}{{"git push returned → preview comment shows the head", commentLat}, {"git push returned → slipway/preview success", statusLat},
		{"of which Slipway: preview started → comment and status posted (daemon log)", own}} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, ms(percentile(r.v, 50)), ms(percentile(r.v, 95)), ms(r.v[0]), ms(r.v[len(r.v)-1]))
	}
	p95 := percentile(commentLat, 95)
	verdict := "met"
	if p95 > previewTargetP95 {
		verdict = "MISSED"
		t.Errorf("push → preview comment p95 %s, target ≤ %s", p95, previewTargetP95)
	}
	fmt.Fprintf(&b, "\n| target | measured | verdict |\n|---|---:|---|\n| push → preview comment p95 ≤ %s | %s | %s |\n",
		previewTargetP95, ms(p95), verdict)
	t.Log(b.String())
	fmt.Println(b.String())
	raw := map[string]any{"pushes": previewPushes, "target_p95_ms": previewTargetP95.Milliseconds(), "verdict": verdict}
	for name, v := range map[string][]time.Duration{"comment_ms": commentLat, "status_ms": statusLat, "slipway_ms": own} {
		vals := make([]int64, len(v))
		for i, x := range v {
			vals[i] = x.Milliseconds()
		}
		raw[name] = vals
	}
	writeReport(t, env, "preview.json", raw)
	d.stop(t)
}

// previewDurations reads the daemon's JSON log for the durations of its last n previews
// ("preview posted": from taking the request up to comment and status sent), sorted.
func previewDurations(t *testing.T, logPath string, n int) []time.Duration {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Msg      string `json:"msg"`
			Duration string `json:"duration"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "preview posted" {
			continue
		}
		d, err := time.ParseDuration(e.Duration)
		if err != nil {
			t.Fatalf("preview posted with duration %q", e.Duration)
		}
		out = append(out, d)
	}
	if len(out) < n {
		t.Fatalf("the daemon logged %d previews, want at least %d", len(out), n)
	}
	out = out[len(out)-n:]
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
