/*
 * ckpt/hf.h — the Hugging Face Llama layout (ckpt/hf.c): tensor names and
 * config.json. The directory reader is a weight source (ckpt/source.h); the
 * writer is ms_hf_export (ckpt/export.c).
 */
#ifndef MS_CKPT_HF_H
#define MS_CKPT_HF_H
#include "core/json.h"
#include "model/llama.h"

/* The Hugging Face name of tensor t of m ("model.layers.3.self_attn.q_proj.weight"). */
void ms_hf_name(const ms_model *m, int t, char *buf, int len);

/* config.json of a LlamaForCausalLM of shape c; dtype MS_F32 or MS_BF16 names
 * torch_dtype; bos, eos < 0 are written as null. */
void ms_hf_config_json(ms_text *t, const ms_model_config *c, int dtype, int bos, int eos);

/* Checks the config.json at path against c: every differing key is listed in
 * one message, with the recipe key it corresponds to. */
ms_status ms_hf_config_check(const char *path, const ms_model_config *c);

#endif
