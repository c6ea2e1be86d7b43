"""MSLR (Yao & Mihalcea, ACL 2022), fixed variant: each encoder trains with its own learning
rate, --learning_rate times --mslr_audio_scale / --mslr_visual_scale; the fusion head keeps
--learning_rate. The StepLR schedule scales all groups alike."""
from .base import Method, encoder_params


class MSLR(Method):
    name = "mslr"

    def param_groups(self, model):
        lr = self.args.learning_rate
        audio, visual = encoder_params(model, "audio"), encoder_params(model, "visual")
        taken = {id(p) for p in audio + visual}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
        return [{"params": audio, "lr": lr * self.args.mslr_audio_scale, "name": "audio_encoder"},
                {"params": visual, "lr": lr * self.args.mslr_visual_scale, "name": "visual_encoder"},
                {"params": rest, "lr": lr, "name": "fusion"}]
