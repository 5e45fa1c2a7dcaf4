package platformtest

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one message a test's SMTP server received.
type Mail struct {
	From string
	To   []string
	Data string
}

// StartSMTP runs a real SMTP server (go-smtp) on loopback for the test and
// returns its address and the messages it receives, in order.
func StartSMTP(t testing.TB) (addr string, inbox <-chan Mail) {
	t.Helper()
	be := &smtpBackend{ch: make(chan Mail, 1024)}
	srv := smtp.NewServer(be)
	srv.Domain = "mail.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), be.ch
}

type smtpBackend struct{ ch chan Mail }

func (b *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b: b}, nil }

type smtpSession struct {
	b   *smtpBackend
	msg Mail
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error { s.msg.From = from; return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.Data = string(b)
	s.b.ch <- s.msg
	return nil
}
func (s *smtpSession) Reset()        { s.msg = Mail{} }
func (s *smtpSession) Logout() error { return nil }
