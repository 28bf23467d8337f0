package netstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// serveDNS answers queries to GatewayIP:53 until the DNS conn closes.
func (s *Stack) serveDNS() {
	buf := make([]byte, dnsMaxQueryLen)
	for {
		n, peer, err := s.dns.ReadFrom(buf)
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("netstack: DNS server stopped", "err", err)
			}
			return
		}
		select {
		case s.dnsSem <- struct{}{}:
		default:
			// Overloaded: drop (the client retries), and say so at a
			// bounded rate.
			if ok, suppressed := s.dnsLog.allow(time.Now()); ok {
				s.audit(Event{Proto: ProtoDNS, Verdict: VerdictDeny, Rule: RuleOverload, Suppressed: suppressed,
					Reason: fmt.Sprintf("DNS query dropped: %d queries already being answered", maxDNSInFlight)})
			}
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.dnsSem }()
			if resp := s.answerDNS(s.ctx, q); resp != nil {
				_, _ = s.dns.WriteTo(resp, peer)
			}
		}()
	}
}

// answerDNS returns the response to one query, or nil to drop it.
func (s *Stack) answerDNS(ctx context.Context, query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	rh := dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		rh.RCode = dnsmessage.RCodeFormatError
		return buildDNS(rh, nil, nil)
	}
	q := qs[0]
	if h.OpCode != 0 {
		rh.RCode = dnsmessage.RCodeNotImplemented
		return buildDNS(rh, &q, nil)
	}
	rcode, addrs := s.resolve(ctx, q)
	rh.RCode = rcode
	return buildDNS(rh, &q, addrs)
}

// resolve applies the policy to one question.
func (s *Stack) resolve(ctx context.Context, q dnsmessage.Question) (dnsmessage.RCode, []netip.Addr) {
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	ev := Event{Proto: ProtoDNS, Name: name}
	deny := func(rule, reason string) {
		ev.Verdict, ev.Rule, ev.Reason = VerdictDeny, rule, reason
		s.audit(ev)
	}
	// The type first: no lookup, allowed or not, for TXT, MX, ANY, HTTPS…
	// (TXT and MX carry data out; HTTPS/SVCB hand out ECH configs).
	if q.Class != dnsmessage.ClassINET || (q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeAAAA) {
		deny(RuleQueryType, "DNS query of type "+q.Type.String()+" refused: only A and AAAA are answered")
		return dnsmessage.RCodeRefused, nil
	}
	if name == HostServiceName {
		return s.resolveHostService(q, ev)
	}
	pol := s.rules.policy()
	d := pol.AllowName(name, 0)
	if !d.Allow {
		if !s.approve(Flow{Proto: ProtoDNS, Name: name, Rule: d.Rule, Reason: d.Reason, Suggest: name}) {
			deny(d.Rule, d.Reason)
			return dnsmessage.RCodeNameError, nil
		}
		pol = s.rules.policy()
		if d = pol.AllowName(name, 0); !d.Allow { // the rules changed meanwhile
			deny(d.Rule, d.Reason)
			return dnsmessage.RCodeNameError, nil
		}
		d.Rule, d.Reason = RuleApproved, "lookup of "+name+" approved"
	}
	if q.Type == dnsmessage.TypeAAAA {
		// No IPv6 on the link: an empty answer makes clients use IPv4.
		ev.Verdict, ev.Rule, ev.Reason = VerdictAllow, d.Rule, "AAAA answered empty: the sandbox network is IPv4 only"
		s.audit(ev)
		return dnsmessage.RCodeSuccess, nil
	}
	lctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	found, err := s.cfg.Resolver.LookupNetIP(lctx, "ip4", name+".")
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			ev.Verdict, ev.Rule, ev.Reason = VerdictAllow, d.Rule, "no such host"
			s.audit(ev)
			return dnsmessage.RCodeNameError, nil
		}
		ev.Verdict, ev.Rule, ev.Reason = VerdictError, d.Rule, "lookup failed: "+err.Error()
		s.audit(ev)
		return dnsmessage.RCodeServerFailure, nil
	}
	var out []netip.Addr
	refused := 0
	for _, ip := range found {
		ip = ip.Unmap()
		if !ip.Is4() || len(out) == maxDNSAnswers {
			continue
		}
		a := s.rules.relabel(pol.CheckAnswer(name, ip))
		e := ev
		e.IP = ip
		if !a.Allow {
			refused++
			e.Verdict, e.Rule, e.Reason = VerdictDeny, a.Rule, a.Reason
			s.audit(e)
			continue
		}
		s.pins.Pin(name, ip, dnsAnswerTTL)
		e.Verdict, e.Rule, e.Reason = VerdictAllow, a.Rule, a.Reason
		s.audit(e)
		out = append(out, ip)
	}
	if len(out) == 0 && refused > 0 {
		deny(RuleRebinding, "every address of "+name+" was refused; an allowed name may not lead to a special address")
		return dnsmessage.RCodeNameError, nil
	}
	return dnsmessage.RCodeSuccess, out
}

// resolveHostService answers HostServiceName: HostServiceIP when the rules
// name any host port, NXDOMAIN otherwise.
func (s *Stack) resolveHostService(q dnsmessage.Question, ev Event) (dnsmessage.RCode, []netip.Addr) {
	ev.Rule = RuleHostService
	if !s.rules.hostPorts() {
		ev.Verdict = VerdictDeny
		ev.Reason = "lookup of " + HostServiceName + " denied: no host port is shared with the sandbox; to reach the host's 127.0.0.1:PORT, add PORT to [network] host_ports (or run with --allow " + HostServiceName + ":PORT)"
		s.audit(ev)
		return dnsmessage.RCodeNameError, nil
	}
	ev.Verdict, ev.IP = VerdictAllow, HostServiceIP
	ev.Reason = HostServiceName + " is the host, for the ports in [network] host_ports"
	s.audit(ev)
	if q.Type != dnsmessage.TypeA {
		return dnsmessage.RCodeSuccess, nil
	}
	return dnsmessage.RCodeSuccess, []netip.Addr{HostServiceIP}
}

// buildDNS packs a response; q nil leaves the question out.
func buildDNS(h dnsmessage.Header, q *dnsmessage.Question, addrs []netip.Addr) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q == nil {
		return finish(&b)
	}
	if b.StartQuestions() != nil || b.Question(*q) != nil || b.StartAnswers() != nil {
		return nil
	}
	for _, ip := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: uint32(dnsAnswerTTL.Seconds())}
		if b.AResource(rh, dnsmessage.AResource{A: ip.As4()}) != nil {
			return nil
		}
	}
	return finish(&b)
}

func finish(b *dnsmessage.Builder) []byte {
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}
