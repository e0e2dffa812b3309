package api

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// TestEventReader: the client's reading of a text/event-stream.
func TestEventReader(t *testing.T) {
	for _, c := range []struct {
		name, stream string
		want         []event
	}{
		{"comment then event", ": subscribed\n\nid: 1\nevent: update\ndata: {\"seq\":1}\n\n",
			[]event{{comment: "subscribed"}, {id: "1", event: "update", data: `{"seq":1}`}}},
		{"no event name is a message", "data: x\n\n", []event{{event: "message", data: "x"}}},
		{"data lines joined", "event: update\ndata: a\ndata: b\n\n", []event{{event: "update", data: "a\nb"}}},
		{"no space after the colon", "id:7\nevent:update\ndata:x\n\n", []event{{id: "7", event: "update", data: "x"}}},
		{"comment inside an event is skipped", "event: update\n: keepalive\ndata: x\n\n", []event{{event: "update", data: "x"}}},
		{"unknown field ignored", "retry: 100\nevent: update\ndata: x\n\n", []event{{event: "update", data: "x"}}},
		{"blank lines between events", "\n\n\nevent: a\n\n\n\nevent: b\n\n", []event{{event: "a"}, {event: "b"}}},
		{"event cut off by the end", "event: update\ndata: x\n", nil},
		{"empty stream", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newEventReader(strings.NewReader(c.stream))
			var got []event
			for {
				ev, err := r.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("after %+v: %v", got, err)
				}
				got = append(got, ev)
			}
			if len(got) != len(c.want) {
				t.Fatalf("read %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("event %d is %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}

	// A line over the limit is an error, not an endless buffer.
	r := newEventReader(strings.NewReader("data: " + strings.Repeat("x", maxEventLine) + "\n\n"))
	if _, err := r.next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("over-long line: %v, want an error", err)
	}
}

// FuzzEventReader: any stream ends in EOF or an error, never a panic or an
// endless loop.
func FuzzEventReader(f *testing.F) {
	f.Add(": subscribed\n\nid: 1\nevent: update\ndata: {}\n\n")
	f.Add("data\n\n:\n\nevent\n")
	f.Fuzz(func(t *testing.T, stream string) {
		r := newEventReader(strings.NewReader(stream))
		for i := 0; ; i++ {
			if _, err := r.next(); err != nil {
				return
			}
			if i > len(stream) {
				t.Fatalf("more events than bytes in %q", stream)
			}
		}
	})
}
