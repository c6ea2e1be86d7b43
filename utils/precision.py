"""Mixed precision as one object: the autocast context and the backward/step (with a grad
scaler for fp16, whose state goes into checkpoints)."""
import torch

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, mode: str, device: torch.device):
        self.mode = mode
        self.dtype = AMP_DTYPES[mode]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=mode == "fp16")

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, before_step=None) -> dict:
        """Backward and step; `before_step()` may change the (unscaled) gradients in between
        and returns numbers to log."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        extras = {}
        if before_step is not None:
            self.scaler.unscale_(optimizer)  # hooks see true gradients (a no-op without fp16)
            extras = before_step()
        self.scaler.step(optimizer)
        self.scaler.update()
        return extras
