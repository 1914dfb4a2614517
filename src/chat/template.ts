// Chat templates: turning a list of messages into the prompt text an instruct model was trained on,
// and that text into token ids.
//
// OpenELM's HF repos ship no chat template. The -Instruct models were DPO-tuned with the template in
// apple/corenet projects/openelm/instruction_tuning/openelm-instruct.yaml (Zephyr style); it is
// built in here as CORENET_INSTRUCT_TEMPLATE and rendered natively (the test suite checks that the
// native rendering equals what @huggingface/jinja, i.e. HF's apply_chat_template with trim_blocks and
// lstrip_blocks, makes of the template string). Any other Jinja template (a file, or the
// `chat_template` of a model folder's tokenizer_config.json, read by io/chat-template-file.ts) is
// rendered with @huggingface/jinja.

import { Template } from '@huggingface/jinja';
import { OpenELMError } from '../core/errors.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole | (string & {});
  content: string;
}

export interface RenderOptions {
  /** End with the assistant header so the model writes the next reply (default true). */
  addGenerationPrompt?: boolean;
  /** OpenAI-style tool definitions, visible to a Jinja template as `tools` (templates that do not use it ignore it). */
  tools?: readonly unknown[];
}

export interface ChatTemplate {
  /** Where the template came from: "builtin:corenet-instruct", a file path, or a tokenizer_config.json path. */
  readonly source: string;
  /** The special-token strings the template writes (`</s>`, `<s>` for Llama-2). */
  readonly eosToken: string;
  readonly bosToken: string;
  /** The Jinja source, when there is one (servers report it as `chat_template`). */
  readonly text?: string;
  render(messages: readonly ChatMessage[], opts?: RenderOptions): string;
}

/** The `chat_template` string of CoreNet's openelm-instruct.yaml, byte for byte. */
export const CORENET_INSTRUCT_TEMPLATE =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n" +
  "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

const LLAMA_BOS = '<s>';
const LLAMA_EOS = '</s>';

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new OpenELMError('usage', 'chat messages must be an array of {role, content}');
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object') throw new OpenELMError('usage', `chat message ${i} must be an object {role, content}`);
    if (typeof m.role !== 'string') throw new OpenELMError('usage', `chat message ${i} needs a string "role"`);
    if (typeof m.content !== 'string') throw new OpenELMError('usage', `chat message ${i} (${m.role}) needs a string "content"`);
  });
}

/**
 * The CoreNet instruct format, rendered as Jinja would render CORENET_INSTRUCT_TEMPLATE: each
 * message is `<|role|>\n` + content + `</s>` + `\n`; the generation prompt `<|assistant|>\n` follows
 * the last message. Like the template, unknown roles are skipped silently; the generation prompt is
 * only written when there is at least one message (it lives inside the template's loop).
 */
export function corenetInstructTemplate(): ChatTemplate {
  return {
    source: 'builtin:corenet-instruct',
    eosToken: LLAMA_EOS,
    bosToken: LLAMA_BOS,
    text: CORENET_INSTRUCT_TEMPLATE,
    render(messages, opts = {}) {
      checkMessages(messages);
      const gen = opts.addGenerationPrompt ?? true;
      let out = '';
      for (const m of messages) {
        if (m.role === 'user' || m.role === 'system' || m.role === 'assistant') out += `<|${m.role}|>\n${m.content}${LLAMA_EOS}\n`;
      }
      if (gen && messages.length > 0) out += '<|assistant|>\n';
      return out;
    },
  };
}

export interface JinjaTemplateOptions {
  source?: string;
  bosToken?: string;
  eosToken?: string;
  /** Extra variables visible to the template (HF's chat_template_kwargs). */
  variables?: Record<string, unknown>;
}

/** A Jinja chat template rendered by @huggingface/jinja (HF's trim_blocks + lstrip_blocks semantics). */
export function jinjaTemplate(text: string, opts: JinjaTemplateOptions = {}): ChatTemplate {
  const source = opts.source ?? '<inline template>';
  let tpl: Template;
  try {
    tpl = new Template(text);
  } catch (e) {
    throw new OpenELMError('template', `chat template ${source} does not parse: ${(e as Error).message}`);
  }
  const bosToken = opts.bosToken ?? LLAMA_BOS, eosToken = opts.eosToken ?? LLAMA_EOS;
  return {
    source, bosToken, eosToken, text,
    render(messages, ropts = {}) {
      checkMessages(messages);
      try {
        return tpl.render({
          ...opts.variables,
          messages: messages.map((m) => ({ ...m })),
          bos_token: bosToken, eos_token: eosToken,
          add_generation_prompt: ropts.addGenerationPrompt ?? true,
          ...(ropts.tools ? { tools: ropts.tools } : {}),
        });
      } catch (e) {
        throw new OpenELMError('template', `chat template ${source} failed to render: ${(e as Error).message}`);
      }
    },
  };
}

/** tokenizer_config.json stores special tokens as strings or as {content: string} objects. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** The chat_template of a parsed tokenizer_config.json (named `source` in errors), or undefined when it has none. */
export function templateFromTokenizerConfigObject(cfg: unknown, source: string): ChatTemplate | undefined {
  if (!cfg || typeof cfg !== 'object') throw new OpenELMError('template', `${source}: expected a JSON object`);
  const c = cfg as Record<string, unknown>;
  let text: unknown = c.chat_template;
  if (text === undefined || text === null) return undefined;
  // Newer configs hold a list of named templates; "default" is the chat one.
  if (Array.isArray(text)) {
    const named = text as { name?: unknown; template?: unknown }[];
    const pick = named.find((t) => t && t.name === 'default') ?? named[0];
    text = pick?.template;
  }
  if (typeof text !== 'string') throw new OpenELMError('template', `${source}: "chat_template" must be a string or a list of {name, template}`);
  return jinjaTemplate(text, { source, bosToken: tokenString(c.bos_token), eosToken: tokenString(c.eos_token) });
}

