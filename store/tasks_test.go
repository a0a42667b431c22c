package store

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestTasks(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	names := []NewTask{
		{Stage: "Source", Name: "checkout", Type: "source"},
		{Stage: "Build", Name: "image", Type: "build-image"},
		{Stage: "Deploy", Name: "web", Type: "deploy-yaml"},
	}
	for _, nt := range names {
		task, err := s.AddTask(ctx, testPipeline, 1, nt)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != TaskPending || task.Name != nt.Name || task.Stage != nt.Stage || task.Type != nt.Type || len(task.Outputs) != 0 {
			t.Fatalf("added %+v", task)
		}
	}
	if _, err := s.AddTask(ctx, testPipeline, 1, names[1]); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate task: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.AddTask(ctx, testPipeline, 2, names[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("task of missing run: %v, want ErrNotFound", err)
	}
	if _, err := s.AddTask(ctx, testPipeline, 1, NewTask{Name: "x"}); err == nil {
		t.Fatal("task without stage and type accepted")
	}

	if _, err := s.TransitionTask(ctx, testPipeline, 1, "image", TaskPending, TaskRunning, ""); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"digest": "sha256:0f1e", "image": "registry.local/app:alpha-1"}
	if err := s.SetTaskOutputs(ctx, testPipeline, 1, "image", outputs); err != nil {
		t.Fatal(err)
	}
	image, err := s.TransitionTask(ctx, testPipeline, 1, "image", TaskRunning, TaskSucceeded, "pushed")
	if err != nil {
		t.Fatal(err)
	}
	if image.StartedAt.IsZero() || image.FinishedAt.IsZero() || image.Reason != "pushed" || !maps.Equal(image.Outputs, outputs) {
		t.Fatalf("finished task %+v", image)
	}
	if _, err := s.TransitionTask(ctx, testPipeline, 1, "web", TaskPending, TaskSkipped, "image failed"); err != nil {
		t.Fatal(err)
	}
	_, err = s.TransitionTask(ctx, testPipeline, 1, "image", TaskSucceeded, TaskRunning, "")
	if !errors.Is(err, ErrIllegalTransition) {
		t.Fatalf("succeeded → running: %v, want ErrIllegalTransition", err)
	}
	_, err = s.TransitionTask(ctx, testPipeline, 1, "web", TaskPending, TaskRunning, "")
	if !errors.Is(err, ErrStatusConflict) {
		t.Fatalf("pending → running of a skipped task: %v, want ErrStatusConflict", err)
	}
	if _, err := s.TransitionTask(ctx, testPipeline, 1, "nope", TaskPending, TaskRunning, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing task: %v, want ErrNotFound", err)
	}
	if err := s.SetTaskOutputs(ctx, testPipeline, 1, "nope", outputs); !errors.Is(err, ErrNotFound) {
		t.Fatalf("outputs of missing task: %v, want ErrNotFound", err)
	}

	tasks, err := s.ListTasks(ctx, testPipeline, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3 || tasks[0].Name != "checkout" || tasks[1].Name != "image" || tasks[2].Name != "web" {
		t.Fatalf("tasks out of order: %+v", tasks)
	}
	if tasks[2].Status != TaskSkipped || !tasks[2].StartedAt.IsZero() || tasks[2].FinishedAt.IsZero() {
		t.Fatalf("skipped task %+v", tasks[2])
	}
	got, err := s.GetTask(ctx, testPipeline, 1, "image")
	if err != nil || !maps.Equal(got.Outputs, outputs) || got.Status != TaskSucceeded {
		t.Fatalf("GetTask = %+v, %v", got, err)
	}
}

// A task's end carries its last log lines and its outputs in the same commit: a move that
// is refused records neither.
func TestEndTaskRecordsLogsAndOutputsWithTheMove(t *testing.T) {
	s, _ := openTest(t)
	ctx := testCtx(t)
	mustRun(t, s, testPipeline)
	if _, err := s.AddTask(ctx, testPipeline, 1, NewTask{Stage: "Build", Name: "image", Type: "build-image"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionTask(ctx, testPipeline, 1, "image", TaskPending, TaskRunning, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLogs(ctx, testPipeline, 1, "image", []LogLine{{Text: "building"}}); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"image": "registry.local/app:1"}
	refused := TaskEnd{From: TaskPending, To: TaskRunning, Logs: []LogLine{{Text: "never stored"}}, Outputs: outputs}
	if _, err := s.EndTask(ctx, testPipeline, 1, "image", refused); !errors.Is(err, ErrStatusConflict) {
		t.Fatalf("end from the wrong status: %v, want ErrStatusConflict", err)
	}
	if task, _ := s.GetTask(ctx, testPipeline, 1, "image"); len(task.Outputs) != 0 {
		t.Fatalf("a refused end stored outputs %v", task.Outputs)
	}
	end := TaskEnd{From: TaskRunning, To: TaskSucceeded, Reason: "pushed",
		Logs: []LogLine{{Text: "pushed"}, {Stream: StreamSystem, Text: "done"}}, Outputs: outputs}
	task, err := s.EndTask(ctx, testPipeline, 1, "image", end)
	if err != nil {
		t.Fatal(err)
	}
	if task.Status != TaskSucceeded || task.Reason != "pushed" || task.FinishedAt.IsZero() || !maps.Equal(task.Outputs, outputs) {
		t.Fatalf("ended task %+v", task)
	}
	lines, err := s.ReadLogs(ctx, testPipeline, 1, LogQuery{Tasks: []string{"image"}})
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range lines {
		text = append(text, l.Text)
	}
	if strings.Join(text, "|") != "building|pushed|done" {
		t.Fatalf("log %q, want the refused end's line left out and the end's lines after the earlier one", text)
	}
	if _, err := s.EndTask(ctx, testPipeline, 1, "image", TaskEnd{From: TaskRunning, To: TaskFailed, Logs: []LogLine{{Stream: "bogus", Text: "x"}}}); err == nil {
		t.Fatal("a line of an unknown stream accepted")
	}
}
