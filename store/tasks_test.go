package store

import (
	"errors"
	"maps"
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
