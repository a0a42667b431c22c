package webhook

// Providers, as written in slipway.yaml's webhook.type.
const (
	GitHub  = "github"
	GitLab  = "gitlab"
	Gitea   = "gitea"
	Generic = "generic"
)

// MaxBody is the largest body the server should read (with http.MaxBytesReader) before
// calling Parse; larger deliveries are answered 413.
const MaxBody = 3 << 20

// Kind is what happened.
type Kind string

const (
	KindPush        Kind = "push"         // a branch moved, was created or was deleted
	KindTag         Kind = "tag"          // a tag was pushed or deleted
	KindPullRequest Kind = "pull_request" // a pull (merge) request changed state
)

// Event is one verified, normalised delivery. Exactly one of Push, Tag and PullRequest
// is set, as Kind says.
type Event struct {
	Provider string // github, gitlab, gitea or generic
	// DeliveryID identifies the delivery; a forge's redelivery has the same one. When
	// the forge sent none it is "sha256:" + hex(sha256(body)).
	DeliveryID  string
	Kind        Kind
	Push        *Push
	Tag         *Tag
	PullRequest *PullRequest
}

// Push is a branch push.
type Push struct {
	Branch  string // without refs/heads/
	Before  string // all zeros when the branch was created
	After   string // all zeros when the branch was deleted
	Created bool
	Deleted bool
	// Message is the head commit's message; "" when the payload does not carry it.
	Message string
	// ChangedPaths is the union of added, modified and removed paths over the pushed
	// commits, sorted. nil means unknown (compute from Git): a created, deleted or
	// force-pushed branch, an empty commit list, or a list the forge truncated.
	ChangedPaths []string
}

// Tag is a tag push.
type Tag struct {
	Name    string // without refs/tags/
	Commit  string // the commit the tag points at (not the annotated tag object); "" when deleted
	Deleted bool
}

// Action is what happened to a pull request.
type Action string

const (
	ActionOpened  Action = "opened"  // opened or reopened
	ActionUpdated Action = "updated" // new commits on the source branch (GitLab: any update)
	ActionMerged  Action = "merged"
	ActionClosed  Action = "closed" // closed without merging
)

// PullRequest is pull (GitLab: merge) request activity.
type PullRequest struct {
	Number int64 // the number people see (GitLab: iid)
	Action Action
	Title  string
	// Author is the login of who opened it; "" when the payload does not name them
	// (GitLab sends only an id, except that the opener is the actor of "open").
	Author string
	// Actor is the login of who caused this event.
	Actor        string
	SourceBranch string
	TargetBranch string
	// FromFork is true when the source branch lives in another repository.
	FromFork   bool
	HeadCommit string
	// MergeCommit is the commit that landed on the target branch; set only for merged
	// and "" when the forge does not say (e.g. a GitLab fast-forward merge).
	MergeCommit string
}
