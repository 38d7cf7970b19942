package neutron

import (
	"context"

	"github.com/astara-go/astara/internal/provider/retry"
)

// RetryPolicy bounds the retries of one operation: see retry.Policy.
type RetryPolicy = retry.Policy

// errKind classifies a failed request: see retry.Kind.
type errKind = retry.Kind

// unsent: the request surely did not reach the API.
const unsent = retry.Unsent

// retryIf decides whether a failure of the given kind is worth a retry.
type retryIf = retry.Predicate

// Retry predicates: idempotent requests retry every transient failure,
// concurrent updates also a conflict, non-idempotent ones only a request
// that was not sent.
var (
	idempotent retryIf = retry.Idempotent
	update     retryIf = retry.Update
)

// do runs f until it succeeds, fails for good, runs out of attempts or ctx
// is done. Each attempt gets a context bounded by the request timeout.
func (p *Provider) do(ctx context.Context, op string, retryIf retryIf, f func(context.Context) error) error {
	r := retry.Runner{Policy: p.opts.Retry, Timeout: p.opts.RequestTimeout, Logger: p.log, API: "network API"}
	return r.Do(ctx, op, retryIf, f)
}
