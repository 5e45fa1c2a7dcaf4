//go:build linux

package localnode

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	"golang.org/x/sys/unix"
)

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func diskTotal(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0
	}
	return int64(st.Blocks) * int64(st.Bsize)
}

func unameRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func osRelease() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`) + " (localnode)"
		}
	}
	return "Linux (localnode)"
}

// vkLogger adapts slog to virtual-kubelet's logger; virtual-kubelet logs at
// info what localnode considers debug.
type vkLogger struct{ l *slog.Logger }

func withVKLogger(ctx context.Context, l *slog.Logger) context.Context {
	return vklog.WithLogger(ctx, vkLogger{l: l.With("component", "virtual-kubelet")})
}

func (v vkLogger) Debug(args ...any)            { v.l.Debug(fmt.Sprint(args...)) }
func (v vkLogger) Debugf(f string, args ...any) { v.l.Debug(fmt.Sprintf(f, args...)) }
func (v vkLogger) Info(args ...any)             { v.l.Debug(fmt.Sprint(args...)) }
func (v vkLogger) Infof(f string, args ...any)  { v.l.Debug(fmt.Sprintf(f, args...)) }
func (v vkLogger) Warn(args ...any)             { v.l.Warn(fmt.Sprint(args...)) }
func (v vkLogger) Warnf(f string, args ...any)  { v.l.Warn(fmt.Sprintf(f, args...)) }
func (v vkLogger) Error(args ...any)            { v.l.Error(fmt.Sprint(args...)) }
func (v vkLogger) Errorf(f string, args ...any) { v.l.Error(fmt.Sprintf(f, args...)) }
func (v vkLogger) Fatal(args ...any)            { v.l.Error(fmt.Sprint(args...)) }
func (v vkLogger) Fatalf(f string, args ...any) { v.l.Error(fmt.Sprintf(f, args...)) }
func (v vkLogger) WithField(k string, val any) vklog.Logger {
	return vkLogger{l: v.l.With(k, val)}
}
func (v vkLogger) WithFields(fs vklog.Fields) vklog.Logger {
	l := v.l
	for k, val := range fs {
		l = l.With(k, val)
	}
	return vkLogger{l: l}
}
func (v vkLogger) WithError(err error) vklog.Logger { return vkLogger{l: v.l.With("err", err)} }
