package membership

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// memberlistLogWriter bridges memberlist's *log.Logger into slog: memberlist
// writes lines like "[WARN] memberlist: Refuting a suspect message"; the
// bracketed level picks the slog level.
type memberlistLogWriter struct {
	logger *slog.Logger
}

func (w memberlistLogWriter) Write(p []byte) (int, error) {
	n := len(p)
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		level := slog.LevelInfo
		msg := bytes.TrimSpace(line)
		if len(msg) > 0 && msg[0] == '[' {
			if end := bytes.IndexByte(msg, ']'); end > 0 {
				switch string(msg[1:end]) {
				case "DEBUG", "TRACE":
					level = slog.LevelDebug
				case "WARN":
					level = slog.LevelWarn
				case "ERR", "ERROR":
					level = slog.LevelError
				}
				msg = bytes.TrimSpace(msg[end+1:])
			}
		}
		msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
		if level == slog.LevelWarn && bytes.HasPrefix(msg, []byte("ignoring alive message for")) {
			level = slog.LevelDebug // our own "refusing peer" line (rate-limited) says it better
		}
		if len(msg) == 0 || !w.logger.Enabled(context.Background(), level) {
			continue
		}
		w.logger.Log(context.Background(), level, string(msg), "component", "memberlist")
	}
	return n, nil
}

// newMemberlistLogger returns the *log.Logger memberlist writes to.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(memberlistLogWriter{logger: l}, "", 0)
}
