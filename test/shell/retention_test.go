package shell

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/test/poll"
)

// Recordings are removed once their session has ended longer ago than the
// retention period, and so are those of deleted tenants; a session still
// open keeps its recording however old it is. The session stays listed
// and its download answers 410.
func TestRecordingRetention(t *testing.T) {
	t.Parallel()
	const retention = 2 * time.Second // the sweep runs every second
	f := newFixture(t, shell.Options{Retention: retention})

	// A recording whose tenant is gone (no session row), old enough.
	orphan := filepath.Join(f.p.castDir, "deleted-tenant", "old-session.cast")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte(`{"version":2,"width":80,"height":24}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(orphan, old, old); err != nil {
		t.Fatal(err)
	}

	tm := openTerm(t, f.p, f.alice, f.dep)
	id := tm.waitMsg("session")["session_id"].(string)
	tm.waitMsg("started")
	tm.send("echo kept\r")
	tm.waitOutput("kept\r\n")
	poll.UntilTrue(t, "the orphaned recording is removed", 30*time.Second, func() bool {
		_, err := os.Stat(orphan)
		return os.IsNotExist(err)
	})

	// Open past the retention period: its recording stays.
	time.Sleep(2 * retention) // let sweeps pass over the idle session's file
	if s := getSession(t, f, id); !s.RecordingAvailable {
		t.Fatalf("a running session's recording was expired: %+v", s)
	}
	file := filepath.Join(f.p.castDir, f.alice.tenantID, id+".cast")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("a running session's recording: %v", err)
	}

	tm.send("exit\r")
	tm.waitMsg("exit")
	poll.UntilTrue(t, "the ended session's recording expires", 30*time.Second, func() bool { return !getSession(t, f, id).RecordingAvailable })
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("the expired recording's file: %v", err)
	}
	s := getSession(t, f, id)
	if s.EndedAt == nil || s.UserEmail != f.alice.email {
		t.Fatalf("the session must stay listed as it was: %+v", s)
	}
	var body struct{ Error struct{ Code string } }
	apiCall(t, f.p, f.alice.token, "GET", "/api/v1/sessions/"+id+"/recording", nil, http.StatusGone, &body)
	if body.Error.Code != "recording_expired" {
		t.Fatalf("download of an expired recording: %+v", body)
	}
}
