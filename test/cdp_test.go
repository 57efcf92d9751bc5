package test

// A tiny Chrome DevTools Protocol client: headless Chromium (Debian's chromium
// package) started with --remote-debugging-port=0, one page driven over a
// websocket: navigate, evaluate JavaScript, take a screenshot. Enough for the
// dashboard test; nothing here is specific to it.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// browser is a headless Chromium process and a CDP session on one page of it.
type browser struct {
	t       testing.TB
	cmd     *exec.Cmd
	exited  chan struct{}
	ws      *websocket.Conn
	session string // the page's CDP session id

	// mu protects next and pending: the calls waiting for their reply.
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpReply
	readErr error         // why the reader stopped; valid once readDone is closed
	readEnd chan struct{} // closed when the reader goroutine returns
	stderr  *syncBuf
}

type cdpReply struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// syncBuf collects a process's output for the failure message.
type syncBuf struct {
	mu sync.Mutex // protects b
	b  strings.Builder
}

func (s *syncBuf) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<16 {
		s.b.WriteString(line + "\n")
	}
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startBrowser starts headless Chromium with a page of width × height CSS pixels.
// It fails the test (never skips) when chromium is not installed. Everything is
// stopped at cleanup.
func startBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("the dashboard test needs headless Chromium: apt-get install -y chromium (.ci/run does it), or set $CHROMIUM to its path")
		}
	}
	b := &browser{t: t, exited: make(chan struct{}), pending: map[int]chan cdpReply{}, readEnd: make(chan struct{}), stderr: &syncBuf{}}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--mute-audio", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-port=0", "--remote-allow-origins=*",
		fmt.Sprintf("--window-size=%d,%d", width, height), "about:blank")
	// Its own process group, so that cleanup can kill its helpers too.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	errPipe, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			b.stderr.add(sc.Text())
			if m := devtoolsURL.FindStringSubmatch(sc.Text()); m != nil && !sent {
				wsURL <- m[1]
				sent = true
			}
		}
		_ = b.cmd.Wait() // after the pipe is drained, as Wait requires
		close(b.exited)
	}()
	t.Cleanup(b.close)

	var u string
	select {
	case u = <-wsURL:
	case <-b.exited:
		t.Fatalf("chromium exited before it listened:\n%s", b.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("chromium did not print its DevTools address within 60 s:\n%s", b.stderr.String())
	}
	b.ws, err = websocket.Dial(u, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatalf("connecting to chromium's DevTools at %s: %v", u, err)
	}
	b.ws.MaxPayloadBytes = 64 << 20 // screenshots
	go b.read()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.must(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.must(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	b.session = att.SessionID
	b.must(ctx, b.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

// read dispatches replies to their callers until the connection ends. Events are
// ignored: the test polls instead.
func (b *browser) read() {
	defer close(b.readEnd)
	for {
		var msg []byte
		if err := websocket.Message.Receive(b.ws, &msg); err != nil {
			b.mu.Lock()
			b.readErr = err
			b.mu.Unlock()
			return
		}
		var r cdpReply
		if err := json.Unmarshal(msg, &r); err != nil || r.ID == 0 {
			continue
		}
		b.mu.Lock()
		ch := b.pending[r.ID]
		delete(b.pending, r.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- r // buffered
		}
	}
}

// call sends one CDP command (on the page's session unless session is "") and
// decodes its result into out (if not nil).
func (b *browser) call(ctx context.Context, session, method string, params, out any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpReply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := websocket.Message.Send(b.ws, string(data)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-b.readEnd:
		return fmt.Errorf("%s: connection to chromium ended: %v", method, b.readErr)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *browser) must(ctx context.Context, session, method string, params, out any) {
	b.t.Helper()
	if err := b.call(ctx, session, method, params, out); err != nil {
		b.t.Fatalf("chromium: %v\n%s", err, b.stderr.String())
	}
}

// navigate opens url in the page.
func (b *browser) navigate(url string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	b.must(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &r)
	if r.ErrorText != "" {
		b.t.Fatalf("chromium: navigating to %s: %s", url, r.ErrorText)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its (JSON-able)
// value into out.
func (b *browser) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.call(ctx, b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("javascript: %s %s", r.Exception.Text, r.Exception.Exception.Description)
	}
	if len(r.Result.Value) == 0 {
		return errors.New("javascript: no value")
	}
	return json.Unmarshal(r.Result.Value, out)
}

// screenshot saves a PNG of the whole page to path.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var r struct {
		Data string `json:"data"`
	}
	b.must(ctx, b.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// close stops chromium and its helper processes and waits for it.
func (b *browser) close() {
	if b.ws != nil {
		_ = b.ws.Close()
		<-b.readEnd
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		b.t.Errorf("chromium (pid %d) did not exit 30 s after SIGKILL", b.cmd.Process.Pid)
	}
}
