package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipwayhq/slipway/internal/sse"
	"github.com/slipwayhq/slipway/server/records"
	"github.com/slipwayhq/slipway/store"
)

// followEvent is one line of `slipway logs -f -o json`: the stream's event and its data.
type followEvent struct {
	Event string          `json:"event"` // status, line or end
	Data  json.RawMessage `json:"data"`
}

// followLogs prints run id's log from the daemon's live stream until the run ends; the
// exit status is 0 only if it succeeded. A dropped connection is resumed after the last
// line seen.
func followLogs(cmd *cobra.Command, f *apiFlags, pipelineArg string, id int64, tasks []string) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	c.http.Timeout = 0 // a stream lasts as long as the run
	path, q := pipelinePath(pipelineArg, strconv.FormatInt(id, 10), "logs", "stream")
	for _, t := range tasks {
		q.Add("task", t)
	}
	out := cmd.OutOrStdout()
	var last int64
	for attempt := 0; ; attempt++ {
		final, err := c.stream(cmd.Context(), path, q, &last, func(e sse.Event) error {
			if f.output == "json" {
				return json.NewEncoder(out).Encode(followEvent{Event: e.Name, Data: json.RawMessage(e.Data)})
			}
			return printFollowed(out, e)
		})
		if err == nil {
			if final.Status != string(store.RunSucceeded) {
				return exitError{code: 1}
			}
			return nil
		}
		var refused *apiError
		if errors.As(err, &refused) || cmd.Context().Err() != nil || attempt == 5 {
			return err
		}
		// The connection dropped (a daemon restart, a proxy): resume after the last line.
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(time.Second << attempt):
		}
	}
}

func printFollowed(out io.Writer, e sse.Event) error {
	switch e.Name {
	case "line":
		var l records.Line
		if err := json.Unmarshal([]byte(e.Data), &l); err != nil {
			return err
		}
		task := l.Task
		if task == "" {
			task = "-"
		}
		_, err := fmt.Fprintf(out, "%s %s %s\n", l.Time.Local().Format(time.TimeOnly), task, l.Text)
		return err
	case "status", "end":
		var r records.Run
		if err := json.Unmarshal([]byte(e.Data), &r); err != nil {
			return err
		}
		line := fmt.Sprintf("== %s/%s #%d %s", r.Repository, r.Pipeline, r.BuildID, r.Status)
		if r.Reason != "" {
			line += ": " + r.Reason
		}
		_, err := fmt.Fprintln(out, line)
		return err
	}
	return nil
}

// apiError is an answer of the daemon other than a stream: not worth retrying.
type apiError struct{ msg string }

func (e *apiError) Error() string { return e.msg }

// stream reads the event stream at path, passing each event to emit and keeping *last at
// the last line's ID, until the "end" event, whose run it returns.
func (c *apiClient) stream(ctx context.Context, path string, q url.Values, last *int64, emit func(sse.Event) error) (records.Run, error) {
	var final records.Run
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return final, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	if *last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*last, 10))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return final, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return final, &apiError{fmt.Sprintf("the daemon answered %s: %s", resp.Status, e.Error)}
		}
		return final, &apiError{"the daemon answered " + resp.Status}
	}
	events := sse.NewReader(resp.Body)
	for {
		e, err := events.Next()
		if err != nil {
			return final, fmt.Errorf("the log stream ended before the run did: %w", err)
		}
		if err := emit(e); err != nil {
			return final, &apiError{err.Error()}
		}
		switch e.Name {
		case "line":
			if n, err := strconv.ParseInt(e.ID, 10, 64); err == nil {
				*last = n
			}
		case "error":
			return final, &apiError{"the daemon: " + e.Data}
		case "end":
			if err := json.Unmarshal([]byte(e.Data), &final); err != nil {
				return final, &apiError{fmt.Sprintf("unreadable end of stream: %v", err)}
			}
			return final, nil
		}
	}
}
