package standalone

import (
	"context"
	"log/slog"

	"github.com/astara-go/astara/internal/provider/local"
)

// pruningCompute is the local compute provider, deleting the bridges of
// networks no appliance uses any more once an instance is deleted or a
// port detached: a deleted router leaves no bridge behind.
type pruningCompute struct {
	*local.Compute
	log *slog.Logger
}

// Delete deletes the instance, then the bridges it alone used. A failed
// prune is logged, not returned: the instance is gone, and the next
// delete or detach prunes again.
func (c pruningCompute) Delete(ctx context.Context, id string) error {
	if err := c.Compute.Delete(ctx, id); err != nil {
		return err
	}
	c.prune(ctx)
	return nil
}

// DetachPort detaches the port, then deletes the bridges no instance
// uses any more.
func (c pruningCompute) DetachPort(ctx context.Context, instanceID, portID string) error {
	if err := c.Compute.DetachPort(ctx, instanceID, portID); err != nil {
		return err
	}
	c.prune(ctx)
	return nil
}

func (c pruningCompute) prune(ctx context.Context) {
	if err := c.Compute.Prune(ctx); err != nil {
		c.log.Warn("pruning unused bridges", "err", err)
	}
}
