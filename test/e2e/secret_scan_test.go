package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayhq/slipway/daemon"
	"github.com/slipwayhq/slipway/store"
	"github.com/slipwayhq/slipway/test/leakscan"
	"github.com/slipwayhq/slipway/test/testenv"
)

const scanPipeline = "secret-scan"

// TestSecretValuesNeverAtRest runs the daemon on a pipeline that deploys a Kubernetes
// Secret (stringData from a cluster Secret and a file, data from a file holding base64),
// lets kubectl change the Secret so drift corrects it, makes a run fail with an API error
// quoting secrets, reads runs through the HTTP API and the CLI, and then looks for every
// secret value (raw, hex, base64) in every file under the data folder (database, -wal,
// -shm, key, mirrors, workspaces), in the daemon's log, in the answers and in the drift
// events. The revisions do hold the values: only encryption keeps them out of the files,
// which the last part shows by storing the same revision without a key.
func TestSecretValuesNeverAtRest(t *testing.T) {
	env := testenv.Get(t)
	ns := env.Namespace(t)
	cs := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	tag := hex.EncodeToString(suffix)
	fromCluster, fromFile, dataValue, driftValue := "cluster-s3cr3t-"+tag, "file-s3cr3t-"+tag, "data-s3cr3t-"+tag, "drift-s3cr3t-"+tag
	scanner, err := leakscan.New(map[string]string{
		"TOKEN (from a cluster Secret)": fromCluster, "FILE_TOKEN (from a file)": fromFile,
		"the Secret's data value": dataValue, "the value kubectl wrote": driftValue,
	})
	if err != nil {
		t.Fatal(err)
	}

	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "src", Namespace: ns}, StringData: map[string]string{"token": fromCluster}}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, src, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	repo, _, cfg := newProject(t, env)
	dir := filepath.Dir(cfg) // the secret files live beside slipway.yaml, outside the data folder
	for name, content := range map[string]string{"file-token": fromFile, "b64-token": base64.StdEncoding.EncodeToString([]byte(dataValue))} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	server, tokenFile := withAPI(t, cfg)
	secretManifest := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\n" +
		"stringData:\n  token: ${TOKEN}\n  file: ${FILE_TOKEN}\ndata:\n  blob: ${B64}\n"
	files := func(manifest string) map[string][]byte {
		return map[string][]byte{
			".pipeline.yaml": []byte(`name: ` + scanPipeline + `
secrets:
  - {name: TOKEN, secret: src, key: token, cluster: e2e, namespace: ` + ns + `}
  - {name: FILE_TOKEN, file: ` + filepath.Join(dir, "file-token") + `}
  - {name: B64, file: ` + filepath.Join(dir, "b64-token") + `}
stages:
  - name: deploy
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: e2e
        namespace: ` + ns + `
        wait: 30s
`),
			"app.yaml": []byte(manifest),
		}
	}
	repo.commit("a Secret", files(secretManifest))
	d := startAPIServe(t, cfg, server, tokenFile)
	waitPipelineHistory(t, cfg, scanPipeline, 90*time.Second, "run 1", func(h []historyEntry) bool {
		return len(h) == 1 && h[0].Status == "succeeded"
	})
	secretValue := func(key string) string {
		got, err := cs.CoreV1().Secrets(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(got.Data[key])
	}
	if secretValue("token") != fromCluster || secretValue("file") != fromFile || secretValue("blob") != dataValue {
		t.Fatal("the secret values did not reach the deployed Secret")
	}

	// Drift: kubectl changes the Secret; the daemon records the event and puts the value back.
	patch := `{"data":{"token":"` + base64.StdEncoding.EncodeToString([]byte(driftValue)) + `"}}`
	kubectl(t, env, "-n", ns, "patch", "secret/app", "--type", "merge", "-p", patch)
	var events string
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, code := slipway(t, "drift", "--events", "-o", "json", "--config", cfg, scanPipeline)
		if code == 0 && strings.Contains(out, "Secret/"+ns+"/app") && secretValue("token") == fromCluster {
			events = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drift event for the Secret, or it was not corrected, within 30s (token %s):\n%s",
				map[bool]string{true: "restored", false: "not restored"}[secretValue("token") == fromCluster], out)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// A run the API server refuses, quoting secret values in its error.
	repo.commit("secrets in a label", files(secretManifest+"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\n"+
		"  labels:\n    bad: \"${TOKEN} ${FILE_TOKEN} ${B64}\"\n"))
	waitPipelineHistory(t, cfg, scanPipeline, 90*time.Second, "run 2 to fail", func(h []historyEntry) bool {
		return len(h) == 2 && h[0].Status == "failed"
	})

	answers := map[string]string{"slipway drift --events": events}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/v1/pipelines/"+scanPipeline+"/runs/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET run %s: %s\n%s", id, resp.Status, body)
		}
		answers["GET /api/v1/pipelines/"+scanPipeline+"/runs/"+id] = string(body)
		logs, code := slipway(t, "logs", "--config", cfg, scanPipeline, id)
		if code != 0 {
			t.Fatalf("slipway logs %s:\n%s", id, logs)
		}
		answers["slipway logs "+id] = logs
	}
	if !strings.Contains(answers["GET /api/v1/pipelines/"+scanPipeline+"/runs/2"], "***") {
		t.Errorf("run 2's answer does not show the masked error:\n%s", answers["GET /api/v1/pipelines/"+scanPipeline+"/runs/2"])
	}
	hist, _ := slipway(t, "history", "--config", cfg, scanPipeline, "-o", "json")
	answers["slipway history"] = hist
	current, code := slipway(t, "drift", "-o", "json", "--config", cfg, scanPipeline)
	if code != 0 {
		t.Fatalf("slipway drift:\n%s", current)
	}
	answers["slipway drift"] = current
	d.stop(t)

	var found []leakscan.Finding
	dataDir := filepath.Join(dir, "data")
	atRest, err := scanner.Dir(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	found = append(found, atRest...)
	found = append(found, scanner.Text("the daemon's log", d.output())...)
	for where, text := range answers {
		found = append(found, scanner.Text(where, text)...)
	}

	// The drift events as stored, and the revisions: opened as the daemon does, after the
	// files were scanned.
	_, st, err := daemon.OpenConfigAndStore(ctx, cfg, logrus.NewEntry(logrus.StandardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ps, err := st.ListPipelines(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("pipelines %+v: %v", ps, err)
	}
	ref := ps[0].Ref
	evs, err := st.ListDriftEvents(ctx, ref, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("drift events %+v: %v", evs, err)
	}
	for _, e := range evs {
		found = append(found, scanner.Text("stored drift event of "+e.Object.Kind+"/"+e.Object.Name, e.Patch+" "+e.Error)...)
	}
	for _, f := range found {
		t.Errorf("a secret value is at rest or shown: %s", f)
	}

	// The revision holds every value (decrypted); a store without a key would show them,
	// so the scan above can fail and found nothing only because of encryption.
	rev, err := st.GetRevision(ctx, ref, 1, "app")
	if err != nil {
		t.Fatal(err)
	}
	if got := scanner.Text("revision 1", string(rev.Objects)); len(got) == 0 {
		t.Fatalf("revision 1 does not hold the secret values; the scan proves nothing:\n%s", rev.Objects)
	}
	plainPath := filepath.Join(t.TempDir(), "plain", "slipway.db")
	plain, err := store.Open(ctx, "sqlite://"+plainPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.CreateRun(ctx, store.NewRun{Pipeline: ref, Commit: "c", Branch: "master", Trigger: store.TriggerPush}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.SaveRevision(ctx, store.NewRevision{Pipeline: ref, BuildID: 1, Task: "app", Cluster: rev.Cluster,
		Namespace: rev.Namespace, Kind: rev.Kind, Objects: rev.Objects, Inventory: rev.Inventory}); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	if got, err := scanner.Dir(ctx, filepath.Dir(plainPath)); err != nil || len(got) == 0 {
		t.Fatalf("the scan did not find the values in a store without a key (%v): it cannot fail", err)
	}
	t.Logf("scanned %s, the daemon's log (%d bytes), %d answers and %d drift events for 4 values",
		dataDir, len(d.output()), len(answers), len(evs))
}
