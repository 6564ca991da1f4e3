// Names for the API's types, all generated from the server's OpenAPI document
// (src/api/generated/schema.d.ts; `npm run gen:api`). Never written by hand.
import type { components } from "./generated/schema";

type S = components["schemas"];
export type User = S["UserOut"];
export type Person = S["PersonOut"];
export type Me = S["MeOut"];
export type Project = S["ProjectOut"];
export type ProjectPatch = S["ProjectPatchIn"];
export type Task = S["TaskOut"];
export type TaskEvent = S["TaskEventOut"];
export type Comment = S["CommentOut"];
export type LogPage = S["LogPage"];
export type LogLine = S["LogLineOut"];
export type SpecRevision = S["SpecRevisionOut"];
export type Diff = S["DiffOut"];
export type Settings = S["SettingsOut"];
export type SettingsPatch = S["SettingsPatch"];
export type TelegramSettings = S["TelegramOut"];
export type SlackSettings = S["SlackOut"];
export type SlackPatch = S["SlackPatch"];
export type ChatLink = S["ChatLinkOut"];
export type ChatLinkCode = S["ChatLinkCodeOut"];
export type RenderedPrompt = S["RenderedPrompt"];
export type TransitionOut = S["TransitionOut"];
export type PromptDefaults = S["PromptDefaults"];
export type GatewaySettings = S["GatewayOut"];
export type GatewayPatch = S["GatewayPatch"];
export type Price = S["Price"];
export type ProviderKeysPatch = S["ProviderKeysPatch"];
export type ProjectGateway = S["ProjectGatewayOut"];
export type ProjectGatewayPatch = S["ProjectGatewayPatch"];
export type Usage = S["UsageOut"];
export type UsageReport = S["UsageReport"];
export type CheckReport = S["CheckReport"];
export type Check = S["Check"];
