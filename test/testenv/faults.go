package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Kill stops one process of the environment at once (SIGKILL), as a crash or a pulled plug
// would, for fault tests. name is its name under .slipway/env/pids: registry, gitserver,
// gitea, kube-apiserver, buildkitd, ... The returned function starts it again exactly as
// env-up started it (command line, environment, folder, log), records its new PID where
// env-up and later tests look, and waits until it answers. If the test ends without calling
// it, a cleanup does, so a failing fault test never leaves the environment broken.
func (e *Env) Kill(t testing.TB, name string) (restart func()) {
	t.Helper()
	oldPID := e.PID(t, name)
	proc := fmt.Sprintf("/proc/%d/", oldPID)
	cmdline, err := os.ReadFile(proc + "cmdline")
	if err != nil {
		t.Fatalf("testenv: %s (PID %d) is not running: %v", name, oldPID, err)
	}
	environ, err := os.ReadFile(proc + "environ")
	if err != nil {
		t.Fatal(err)
	}
	cwd, err := os.Readlink(proc + "cwd")
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	// env-up starts some parts as another user (PostgreSQL refuses root): restart them so.
	cred, err := procCredential(proc + "status")
	if err != nil {
		t.Fatalf("testenv: %s: %v", name, err)
	}
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatalf("testenv: kill %s: %v", name, err)
	}
	for deadline := time.Now().Add(10 * time.Second); alive(oldPID); {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s (PID %d) did not die", name, oldPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("testenv: killed %s (PID %d)", name, oldPID)

	done := false
	restart = func() {
		t.Helper()
		if done {
			return
		}
		done = true
		logFile, err := os.OpenFile(filepath.Join(e.stateDir, "logs", name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer logFile.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
		cmd.Dir, cmd.Stdout, cmd.Stderr = cwd, logFile, logFile
		// Its own session: it must outlive this test binary, as env-up's processes do.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if int(cred.Uid) != os.Getuid() {
			cmd.SysProcAttr.Credential = cred
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: restart %s: %v", name, err)
		}
		newPID := cmd.Process.Pid
		_ = cmd.Process.Release()
		if err := e.replacePID(name, oldPID, newPID); err != nil {
			t.Fatalf("testenv: record the new PID of %s: %v", name, err)
		}
		if err := e.waitAnswers(name); err != nil {
			t.Fatalf("testenv: %s restarted (PID %d) but does not answer: %v; see %s", name, newPID, err,
				filepath.Join(e.stateDir, "logs", name+".log"))
		}
		t.Logf("testenv: restarted %s (PID %d)", name, newPID)
	}
	t.Cleanup(restart)
	return restart
}

// PID is the process id of one process of the environment (a name under
// .slipway/env/pids, as for Kill), for benchmarks that measure its CPU.
func (e *Env) PID(t testing.TB, name string) int {
	t.Helper()
	if e.stateDir == "" {
		t.Fatalf("testenv: %s names no SLIPWAY_ENV_DIR; restart the environment with `make env-down env-up`", envFile)
	}
	b, err := os.ReadFile(filepath.Join(e.stateDir, "pids", name))
	if err != nil {
		t.Fatalf("testenv: no process %q in the environment: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("testenv: pid of %s: %v", name, err)
	}
	return pid
}

// replacePID records a restarted process's PID in pids/NAME and in testenv.env's
// SLIPWAY_ENV_PIDS, by which env-up judges the environment alive.
func (e *Env) replacePID(name string, oldPID, newPID int) error {
	if err := os.WriteFile(filepath.Join(e.stateDir, "pids", name), []byte(strconv.Itoa(newPID)+"\n"), 0o644); err != nil {
		return err
	}
	path := filepath.Join(e.Root, envFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, "export SLIPWAY_ENV_PIDS="); ok {
			pids := strings.Fields(strings.Trim(v, `"`))
			for j, p := range pids {
				if p == strconv.Itoa(oldPID) {
					pids[j] = strconv.Itoa(newPID)
				}
			}
			lines[i] = `export SLIPWAY_ENV_PIDS="` + strings.Join(pids, " ") + `"`
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// waitAnswers waits up to a minute for a restarted process to serve again.
func (e *Env) waitAnswers(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var probe func() error
	get := func(url string) func() error {
		return func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				return fmt.Errorf("%s answered %d", url, resp.StatusCode)
			}
			return nil
		}
	}
	switch name {
	case "registry":
		probe = get("http://" + e.Registry + "/v2/")
	case "gitserver":
		probe = get(e.GitURL + "/healthz")
	case "gitea":
		probe = get(e.GiteaURL + "/api/v1/version")
	case "kube-apiserver":
		cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
		if err != nil {
			return err
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		probe = func() error { return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() }
	case "postgres":
		probe = func() error { return postgresExec(e.PostgresURL, `SELECT 1`) }
	default:
		return nil // no probe known: the caller waits for what it needs
	}
	var last error
	for ctx.Err() == nil {
		if last = probe(); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last
}

// procCredential reads the real user and group a process runs as from /proc/PID/status.
func procCredential(statusFile string) (*syscall.Credential, error) {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return nil, err
	}
	cred := &syscall.Credential{}
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 || (key != "Uid" && key != "Gid") {
			continue
		}
		id, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", statusFile, key, err)
		}
		if key == "Uid" {
			cred.Uid = uint32(id)
		} else {
			cred.Gid = uint32(id)
		}
	}
	return cred, nil
}

// alive says whether process pid still runs. A part that an earlier Kill restarted is this
// test binary's child: once killed it stays a zombie until reaped, so it is reaped here
// (Wait4 fails harmlessly for a process that is not our child) and a zombie counts as dead.
func alive(pid int) bool {
	var ws syscall.WaitStatus
	if got, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid {
		return false
	}
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may hold spaces.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}
