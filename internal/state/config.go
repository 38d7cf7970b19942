package state

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the thresholds and delays of the state machines. The names
// in comments are the original's options (astara, [DEFAULT] group).
type Config struct {
	// RebootErrorThreshold is how many boots may fail before the resource
	// goes to ERROR (reboot_error_threshold).
	RebootErrorThreshold int
	// ErrorStateCooldown is how long a resource in ERROR holds its events
	// before retrying (error_state_cooldown).
	ErrorStateCooldown time.Duration
	// BootTimeout bounds how long an instance may stay Booting before it is
	// replaced (boot_timeout; the original did not enforce it).
	BootTimeout time.Duration
	// BootCheckInterval is how often a Booting instance is re-checked.
	BootCheckInterval time.Duration
	// RetryDelay is the first delay before retrying a failed step
	// (retry_delay); it doubles on each consecutive failure.
	RetryDelay time.Duration
	// MaxRetryDelay caps the retry delay.
	MaxRetryDelay time.Duration
	// MaxReplugs is how many replugs in a row may leave the NICs mismatched
	// before the instance is replaced.
	MaxReplugs int
}

// DefaultConfig returns the original's defaults, and defaults for what it
// did not have.
func DefaultConfig() Config {
	return Config{
		RebootErrorThreshold: 5,
		ErrorStateCooldown:   30 * time.Second,
		BootTimeout:          600 * time.Second,
		BootCheckInterval:    5 * time.Second,
		RetryDelay:           time.Second,
		MaxRetryDelay:        time.Minute,
		MaxReplugs:           3,
	}
}

// Validate reports every invalid field, by option name.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, d))
		}
	}
	if c.RebootErrorThreshold < 1 {
		errs = append(errs, fmt.Errorf("reboot_error_threshold: must be at least 1, got %d", c.RebootErrorThreshold))
	}
	if c.MaxReplugs < 1 {
		errs = append(errs, fmt.Errorf("max_replugs: must be at least 1, got %d", c.MaxReplugs))
	}
	if c.ErrorStateCooldown < 0 {
		errs = append(errs, fmt.Errorf("error_state_cooldown: must not be negative, got %s", c.ErrorStateCooldown))
	}
	positive("boot_timeout", c.BootTimeout)
	positive("boot_check_interval", c.BootCheckInterval)
	positive("retry_delay", c.RetryDelay)
	positive("max_retry_delay", c.MaxRetryDelay)
	if c.MaxRetryDelay > 0 && c.MaxRetryDelay < c.RetryDelay {
		errs = append(errs, fmt.Errorf("max_retry_delay: %s is shorter than retry_delay %s", c.MaxRetryDelay, c.RetryDelay))
	}
	return errors.Join(errs...)
}

// Backoff returns the delay before retry number n (0 for the first):
// RetryDelay·2ⁿ capped at MaxRetryDelay, with equal jitter: half of it is
// fixed and half is random, so retries neither spin nor synchronise across
// resources. jitter(k) returns a random number in [0, k); nil means none.
func (c Config) Backoff(n int, jitter func(int64) int64) time.Duration {
	d := c.RetryDelay
	for i := 0; i < n && d < c.MaxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, c.MaxRetryDelay)
	if jitter == nil || d < 2 {
		return d
	}
	half := d / 2
	return half + time.Duration(jitter(int64(d-half)))
}
