// Package options is how every binary of this repository is configured: one
// table of settings per binary, each setting a flag with an environment
// variable of a fixed name (the binary's prefix and the flag's name upper-cased,
// '-' as '_': --kube-api-qps ⇔ AGENTKUBE_KUBE_API_QPS). Defaults < environment <
// command line. --help prints every flag with its variable, and Parse reports
// every malformed value, from the environment and the command line, at once.
//
// It is built on spf13/pflag; flags registered on a standard flag.FlagSet
// (klog's, and packages that take one) join through AddGoFlagSet.
package options

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Set is one binary's settings.
type Set struct {
	name   string
	prefix string
	fs     *pflag.FlagSet
	// vars overrides the variable of a flag; "" means the flag has none.
	vars map[string]string
	// lists are flags whose variable holds several values separated by the
	// given string, each given to the flag in turn, before those of the
	// command line.
	lists map[string]string
	// Output receives --help (default os.Stderr).
	Output io.Writer
	// Description is printed above the table by --help.
	Description string
}

// New returns an empty table for the binary name whose variables start with
// prefix ("AGENTKUBE_").
func New(name, prefix string) *Set {
	s := &Set{
		name:   name,
		prefix: prefix,
		fs:     pflag.NewFlagSet(name, pflag.ContinueOnError),
		vars:   map[string]string{},
		lists:  map[string]string{},
	}
	s.fs.SortFlags = false
	s.fs.SetOutput(io.Discard) // errors are returned, --help printed by Usage
	s.fs.Usage = func() {}
	return s
}

// Flags is the flag set to register settings on.
func (s *Set) Flags() *pflag.FlagSet { return s.fs }

// AddGoFlagSet adds the flags of a standard flag set.
func (s *Set) AddGoFlagSet(gfs *flag.FlagSet) { s.fs.AddGoFlagSet(gfs) }

// SetVariable names the variable of a flag explicitly; "" gives it none.
func (s *Set) SetVariable(flagName, variable string) { s.vars[flagName] = variable }

// ListVariable makes the variable of a repeatable flag hold several values
// separated by sep; they come before the command line's.
func (s *Set) ListVariable(flagName, sep string) { s.lists[flagName] = sep }

// Variable is the environment variable of a flag ("" when it has none).
func (s *Set) Variable(flagName string) string {
	if v, ok := s.vars[flagName]; ok {
		return v
	}
	return s.prefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Parse applies the environment (through lookup; os.LookupEnv in production)
// and then args. Empty variables count as unset. Every malformed value is
// reported, each with its flag or variable, in one error. With -h or --help
// it prints the table and returns pflag.ErrHelp.
func (s *Set) Parse(args []string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	var errs []error
	// Which flags the command line sets: their variables are not read
	// (except for lists, whose values add up).
	present, argsErr := s.presentFlags(args)
	if errors.Is(argsErr, pflag.ErrHelp) {
		s.PrintUsage()
		return pflag.ErrHelp
	}
	s.fs.VisitAll(func(f *pflag.Flag) {
		variable := s.Variable(f.Name)
		if variable == "" {
			return
		}
		v, ok := lookup(variable)
		if !ok || strings.TrimSpace(v) == "" {
			return
		}
		sep, isList := s.lists[f.Name]
		if present[f.Name] && !isList {
			return
		}
		values := []string{v}
		if isList {
			values = nil
			for _, part := range strings.Split(v, sep) {
				if part = strings.TrimSpace(part); part != "" {
					values = append(values, part)
				}
			}
		}
		for _, part := range values {
			if err := f.Value.Set(part); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %w", variable, part, err))
			}
		}
	})
	// Every value of the command line is tried; the errors are collected.
	var valueErrs []error
	s.fs.VisitAll(func(f *pflag.Flag) {
		if _, wrapped := f.Value.(*collecting); !wrapped {
			f.Value = &collecting{Value: f.Value, name: f.Name, errs: &valueErrs}
		}
	})
	if argsErr != nil {
		// An unknown flag or a missing value: the command line is not
		// parsed, but the environment's errors are still reported.
		return errors.Join(append(errs, argsErr)...)
	}
	if err := s.fs.Parse(args); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, valueErrs...)
	if len(errs) == 0 && s.fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", s.fs.Args()))
	}
	return errors.Join(errs...)
}

// presentFlags parses args into a copy of the table whose values accept
// anything, to learn which flags the command line sets without changing any.
func (s *Set) presentFlags(args []string) (map[string]bool, error) {
	probe := pflag.NewFlagSet(s.name, pflag.ContinueOnError)
	probe.SetOutput(io.Discard)
	probe.Usage = func() {}
	s.fs.VisitAll(func(f *pflag.Flag) {
		probe.AddFlag(&pflag.Flag{Name: f.Name, Shorthand: f.Shorthand, NoOptDefVal: f.NoOptDefVal, Value: anyValue(f.Value.Type())})
	})
	err := probe.Parse(args)
	present := map[string]bool{}
	probe.Visit(func(f *pflag.Flag) { present[f.Name] = true })
	return present, err
}

// PrintUsage writes the table: every flag, its default and its variable.
func (s *Set) PrintUsage() {
	w := s.Output
	if w == nil {
		w = os.Stderr
	}
	if s.Description != "" {
		fmt.Fprintf(w, "%s\n\n", s.Description)
	}
	fmt.Fprintf(w, "Usage of %s (every flag can be set through the variable in brackets; the command line wins):\n", s.name)
	usages := map[string]string{}
	s.fs.VisitAll(func(f *pflag.Flag) {
		usages[f.Name] = f.Usage
		if v := s.Variable(f.Name); v != "" {
			f.Usage = strings.TrimSpace(f.Usage + " [$" + v + "]")
		}
	})
	fmt.Fprint(w, s.fs.FlagUsages())
	s.fs.VisitAll(func(f *pflag.Flag) { f.Usage = usages[f.Name] })
}

// collecting records a value's error instead of stopping the parse.
type collecting struct {
	pflag.Value
	name string
	errs *[]error
}

func (c *collecting) Set(v string) error {
	if err := c.Value.Set(v); err != nil {
		*c.errs = append(*c.errs, fmt.Errorf("--%s: invalid value %q: %w", c.name, v, err))
	}
	return nil
}

// IsBoolFlag keeps standard boolean flags usable without a value.
func (c *collecting) IsBoolFlag() bool {
	b, ok := c.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Unwrap returns the flag's own value.
func (c *collecting) Unwrap() pflag.Value { return c.Value }

type anyValue string

func (a anyValue) String() string   { return "" }
func (a anyValue) Set(string) error { return nil }
func (a anyValue) Type() string     { return string(a) }
