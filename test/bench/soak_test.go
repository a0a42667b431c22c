package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/testenv"
)

// soakPush is one commit the pusher pushed.
type soakPush struct {
	repo, commit, value string
	at                  time.Time
}

// soakKill is one kill's outcome, as the per-kill table shows it.
type soakKill struct {
	N            int      `json:"n"`
	Replica      string   `json:"replica"`
	AtSeconds    float64  `json:"at_seconds"` // into the soak
	Repositories int      `json:"repositories"`
	FailoverSec  float64  `json:"failover_seconds"` // kill → every moved repository looked at by its new owner
	InFlight     []string `json:"in_flight"`        // runs running on the killed replica's repositories at the kill
	Interrupted  int      `json:"interrupted"`      // of those, ended interrupted with the cause named
	Retried      int      `json:"retried"`          // of those, retried under a new BUILD_ID (parent recorded)
	Superseded   int      `json:"superseded"`       // of those, not retried: a later commit's run came first
	EndedBefore  int      `json:"ended_before"`     // of those, ended on their own before the kill took effect
	SurvivorsUp  bool     `json:"survivors_up"`
	Problems     []string `json:"problems"`
}

type soakReport struct {
	Replicas      int        `json:"replicas"`
	Repositories  int        `json:"repositories"`
	Timing        string     `json:"ha_timing"`
	Seed          uint64     `json:"seed"`
	Seconds       float64    `json:"seconds"`
	Pushes        int        `json:"pushes"`
	Runs          int        `json:"runs"`
	Interrupted   int        `json:"interrupted"`
	Kills         []soakKill `json:"kills"`
	CronTicks     int        `json:"cron_ticks"`
	CronDoubled   int        `json:"cron_doubled"`
	CronLate      []string   `json:"cron_missing_minutes"`
	Problems      []string   `json:"problems"`
	LoadAvgBefore string     `json:"load_avg_before"`
	LoadAvgAfter  string     `json:"load_avg_after"`
}

// soakPipeline sleeps (so kills find runs in flight), then deploys cm.yaml.
func soakPipeline(ns string) string {
	return `name: app
retryInterrupted: true
stages:
- name: work
  tasks:
  - name: step
    type: script
    executor: local
    script: sleep 4
- name: deploy
  tasks:
  - name: cm
    type: deploy-yaml
    path: cm.yaml
    cluster: bench
    namespace: ` + ns + `
`
}

func soakConfigMap(repo, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  value: %q\n", repo, value)
}

// gitIn runs git in dir; its error leaves the output out (it may name the credentials).
func gitIn(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v", args[0], err)
	}
	return strings.TrimSpace(string(out)), nil
}

// pushFiles writes files in the working copy dir, commits them and pushes to push.
func pushFiles(dir, push string, files map[string]string, msg string) (string, error) {
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "--allow-empty", "-m", msg}, {"push", "-q", push, "master"}} {
		if _, err := gitIn(dir, args...); err != nil {
			return "", err
		}
	}
	return gitIn(dir, "rev-parse", "HEAD")
}

// TestSoak (`make soak`, not in make test): three replicas share nine repositories whose
// pipeline sleeps 4 s then deploys a ConfigMap, and one with an every-minute schedule. A
// pusher pushes a commit to a random repository every 1-4 s, with its webhook to a random live
// replica (every pushed commit is then recorded: a run, or superseded when a newer one
// overtook it), while one replica, chosen at
// random, is SIGKILLed at a random moment SOAK_KILLS times (20), and started again once its
// repositories moved. After each kill: the surviving replicas are up and the killed one's
// repositories are looked at by their new owners. At the end, once the last pushes ran:
// each run that was in flight on a killed replica ended interrupted with the cause named
// and was retried under a new BUILD_ID (retryInterrupted); no BUILD_ID reused or skipped
// per pipeline; every pushed commit has a run and each repository's last commit
// succeeded; every ConfigMap holds its repository's last value (the last successful
// revision); no schedule tick ran twice. A table of outcomes per kill.
func TestSoak(t *testing.T) {
	env := testenv.Get(t)
	bin := buildSlipwayBinary(t, env)
	kills := envCount(t, "SOAK_KILLS", 20)
	ns := env.Namespace(t)
	const nApps = 9
	dir := t.TempDir()
	apps := newHARepos(t, env, dir, "soak", nApps, func(i int) map[string]string {
		return map[string]string{".pipeline.yaml": soakPipeline(ns), "cm.yaml": soakConfigMap(fmt.Sprintf("soak-%03d", i), "v0")}
	})
	cron := newHARepos(t, env, dir, "tick", 1, func(int) map[string]string {
		return map[string]string{".pipeline.yaml": scriptPipeline("tick", "'true'", "triggers:\n  schedules:\n    - cron: \"*/1 * * * *\"\n")}
	})
	all := append(slices.Clone(apps), cron...)
	names := repoNames(all)
	ids := []string{"replica-a", "replica-b", "replica-c"}
	h := newHABench(t, env, bin, all, haOptions{replicas: ids, poll: "5s", webhook: true, timing: haDefaults})
	for _, id := range ids {
		h.start(id)
	}
	owners := h.settle(names, 2*time.Minute)
	began := time.Now()
	seed := uint64(began.UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	rep := soakReport{Replicas: len(ids), Repositories: len(all), Timing: haDefaults.String(), Seed: seed, LoadAvgBefore: loadAverage()}

	// The pusher.
	var (
		mu     sync.Mutex
		pushes []soakPush
		errs   []error
	)
	stop := make(chan struct{})
	pusherDone := make(chan struct{})
	go func() {
		defer close(pusherDone)
		prng := rand.New(rand.NewPCG(seed, 3))
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second + time.Duration(prng.Int64N(int64(3*time.Second)))):
			}
			r := apps[prng.IntN(len(apps))]
			value := fmt.Sprintf("v%d", n)
			commit, err := pushFiles(r.work.dir, r.push, map[string]string{"cm.yaml": soakConfigMap(r.name, value)}, value)
			if err == nil {
				// The push's webhook to a replica, as through a Service: a dead one refuses
				// the connection and the next is tried.
				err = fmt.Errorf("no replica took the webhook")
				for _, i := range prng.Perm(len(ids)) {
					if derr := h.deliver(h.reps[ids[i]], r.name, commit); derr == nil {
						err = nil
						break
					}
				}
			}
			mu.Lock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
			} else {
				pushes = append(pushes, soakPush{repo: r.name, commit: commit, value: value, at: time.Now()})
			}
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-pusherDone
	}()

	type inFlight struct {
		kill    int
		victim  string
		repo    string
		buildID int64
	}
	var flights []inFlight
	for k := range kills {
		time.Sleep(2*time.Second + time.Duration(rng.Int64N(int64(8*time.Second))))
		victim := ids[rng.IntN(len(ids))]
		var mine []string
		for repo, o := range owners {
			if o[0] == victim {
				mine = append(mine, repo)
			}
		}
		sk := soakKill{N: k + 1, Replica: victim, Repositories: len(mine)}
		for _, r := range h.runs() {
			if r.Status == "running" && slices.Contains(mine, r.Repository) {
				sk.InFlight = append(sk.InFlight, fmt.Sprintf("%s#%d", r.Repository, r.BuildID))
				flights = append(flights, inFlight{kill: k, victim: victim, repo: r.Repository, buildID: r.BuildID})
			}
		}
		at := h.kill(victim)
		sk.AtSeconds = at.Sub(began).Seconds()
		polled := h.firstLooks(mine, at, victim, time.Minute)
		var last time.Duration
		for _, p := range polled {
			last = max(last, p.Sub(at))
		}
		sk.FailoverSec = last.Seconds()
		if len(polled) < len(mine) {
			sk.Problems = append(sk.Problems, fmt.Sprintf("%d of %d repositories not looked at within a minute", len(mine)-len(polled), len(mine)))
		}
		sk.SurvivorsUp = len(h.live()) == len(ids)-1
		if !sk.SurvivorsUp {
			sk.Problems = append(sk.Problems, "a surviving replica exited")
		}
		h.start(victim)
		owners = h.settle(names, 2*time.Minute)
		rep.Kills = append(rep.Kills, sk)
		t.Logf("kill %2d at %4.0fs: %s (%d repositories, %d runs in flight), moved in %.1fs; load %s",
			k+1, sk.AtSeconds, victim, len(mine), len(sk.InFlight), sk.FailoverSec, loadAverage())
	}
	close(stop)
	<-pusherDone
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		rep.Problems = append(rep.Problems, "push: "+err.Error())
	}
	rep.Pushes = len(pushes)

	// The last pushes run to the end.
	lastPush := map[string]soakPush{}
	for _, p := range pushes {
		lastPush[p.repo] = p
	}
	var runs []haRun
	deadline := time.Now().Add(4 * time.Minute)
	for {
		runs = h.runs()
		done := 0
		for _, p := range lastPush {
			for _, r := range runs {
				if r.Repository == p.repo && r.Commit == p.commit && r.Status == "succeeded" {
					done++
					break
				}
			}
		}
		if done == len(lastPush) {
			break
		}
		if time.Now().After(deadline) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%d of %d repositories' last commits did not succeed within 4 minutes", len(lastPush)-done, len(lastPush)))
			break
		}
		time.Sleep(time.Second)
	}
	rep.Runs = len(runs)
	rep.Seconds = time.Since(began).Seconds()

	// Each run in flight at a kill: interrupted with the cause, and retried.
	byKey := map[string]haRun{}
	retryOf := map[string]haRun{}
	for _, r := range runs {
		byKey[fmt.Sprintf("%s/%s#%d", r.Repository, r.Pipeline, r.BuildID)] = r
		if r.ParentBuildID != 0 {
			retryOf[fmt.Sprintf("%s/%s#%d", r.Repository, r.Pipeline, r.ParentBuildID)] = r
		}
	}
	for _, f := range flights {
		sk := &rep.Kills[f.kill]
		key := fmt.Sprintf("%s/app#%d", f.repo, f.buildID)
		r := byKey[key]
		switch {
		case r.Status == "interrupted" && strings.Contains(r.Reason, store.InterruptedReason):
			sk.Interrupted++
			if rt, ok := retryOf[key]; ok && rt.Trigger == "retry" && rt.Commit == r.Commit {
				sk.Retried++
			} else if strings.Contains(r.Reason, "not retried: superseded by") {
				sk.Superseded++ // a later push of the repository ran instead
			} else {
				sk.Problems = append(sk.Problems, key+" interrupted but not retried")
			}
		case r.Status == "succeeded" || r.Status == "superseded":
			sk.EndedBefore++ // ended in the instant between the listing and the kill
		default:
			sk.Problems = append(sk.Problems, fmt.Sprintf("%s: %s %q", key, r.Status, r.Reason))
		}
	}

	// Every interrupted run, in flight at a kill or queued there: the cause named, and
	// retried or overtaken by a later commit's run.
	for key, r := range byKey {
		if r.Status != "interrupted" {
			continue
		}
		rep.Interrupted++
		_, retried := retryOf[key]
		switch {
		case !strings.Contains(r.Reason, store.InterruptedReason):
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s interrupted without the cause: %q", key, r.Reason))
		case !retried && !strings.Contains(r.Reason, "not retried: superseded by"):
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s interrupted, neither retried nor superseded: %q", key, r.Reason))
		}
	}

	// BUILD_IDs 1..n per pipeline; every pushed commit ran; the ConfigMaps hold the last values.
	ids2 := map[string][]int64{}
	ran := map[string]bool{}
	for _, r := range runs {
		ids2[r.Repository+"/"+r.Pipeline] = append(ids2[r.Repository+"/"+r.Pipeline], r.BuildID)
		ran[r.Repository+"@"+r.Commit] = true
	}
	for k, list := range ids2 {
		slices.Sort(list)
		for i, id := range list {
			if id != int64(i+1) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: BUILD_IDs %v are not 1..%d", k, list, len(list)))
				break
			}
		}
	}
	for _, p := range pushes {
		if !ran[p.repo+"@"+p.commit] {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: pushed commit %s (%s) has no run", p.repo, p.commit[:8], p.value))
		}
	}
	cms := env.Clientset(t).CoreV1().ConfigMaps(ns)
	for _, p := range lastPush {
		cm, err := cms.Get(context.Background(), p.repo, metav1.GetOptions{})
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", p.repo, err))
		} else if cm.Data["value"] != p.value {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: the cluster holds %q, the last commit says %q; its runs:\n%s",
				p.repo, cm.Data["value"], p.value, describeRuns(runs, p.repo, pushes)))
		}
	}

	// One run per tick: none doubled; minutes without one are reported (a kill between a
	// tick's claim and its run's record loses it, docs/operations.md).
	perMinute := map[int64]int{}
	var first, lastTick time.Time
	for _, r := range runs {
		if r.Repository == cron[0].name && r.Trigger == "cron" {
			m := r.CreatedAt.Truncate(time.Minute)
			perMinute[m.Unix()]++
			rep.CronTicks++
			if first.IsZero() || m.Before(first) {
				first = m
			}
			if m.After(lastTick) {
				lastTick = m
			}
		}
	}
	for m, n := range perMinute {
		if n > 1 {
			rep.CronDoubled++
			rep.Problems = append(rep.Problems, fmt.Sprintf("the tick of %s ran %d times", time.Unix(m, 0).UTC().Format(time.TimeOnly), n))
		}
	}
	for m := first; !first.IsZero() && m.Before(lastTick); m = m.Add(time.Minute) {
		if perMinute[m.Unix()] == 0 {
			rep.CronLate = append(rep.CronLate, m.UTC().Format(time.TimeOnly))
		}
	}
	if len(h.live()) != len(ids) {
		rep.Problems = append(rep.Problems, "a replica exited by itself")
	}
	rep.LoadAvgAfter = loadAverage()

	var b strings.Builder
	fmt.Fprintf(&b, "\nSoak: %d SIGKILLs of one of %d replicas (%s) over %.0f s; %d pushes to %d repositories, %d runs (%d interrupted), %d schedule ticks (%d doubled, minutes without a run: %v); load %s before, %s after; seed %d\n\n",
		len(rep.Kills), len(ids), rep.Timing, rep.Seconds, rep.Pushes, nApps, rep.Runs, rep.Interrupted, rep.CronTicks, rep.CronDoubled, rep.CronLate, rep.LoadAvgBefore, rep.LoadAvgAfter, seed)
	b.WriteString("| kill | replica | at s | repos moved | moved in s | runs in flight | interrupted (cause named) | retried | superseded, not retried | ended before the kill | survivors up | problems |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, k := range rep.Kills {
		fmt.Fprintf(&b, "| %d | %s | %.0f | %d | %.1f | %d | %d | %d | %d | %d | %v | %s |\n", k.N, k.Replica, k.AtSeconds, k.Repositories,
			k.FailoverSec, len(k.InFlight), k.Interrupted, k.Retried, k.Superseded, k.EndedBefore, k.SurvivorsUp, strings.Join(k.Problems, "; "))
		for _, p := range k.Problems {
			rep.Problems = append(rep.Problems, fmt.Sprintf("kill %d: %s", k.N, p))
		}
	}
	t.Log(b.String())
	writeReport(t, env, "soak.json", rep)
	for _, p := range rep.Problems {
		t.Error(p)
	}
}

// describeRuns lists a repository's runs, oldest first, with the value each commit pushed.
func describeRuns(runs []haRun, repo string, pushes []soakPush) string {
	value := map[string]string{}
	for _, p := range pushes {
		value[p.commit] = p.value
	}
	var mine []haRun
	for _, r := range runs {
		if r.Repository == repo {
			mine = append(mine, r)
		}
	}
	slices.SortFunc(mine, func(a, b haRun) int { return int(a.BuildID - b.BuildID) })
	var b strings.Builder
	for _, r := range mine {
		fmt.Fprintf(&b, "  #%d %s (%s) %s parent %d, created %s finished %s: %s %q\n", r.BuildID, r.Commit[:8], value[r.Commit], r.Trigger,
			r.ParentBuildID, r.CreatedAt.Format("15:04:05.000"), r.FinishedAt.Format("15:04:05.000"), r.Status, r.Reason)
	}
	return b.String()
}
