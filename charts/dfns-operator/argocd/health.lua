-- Argo CD health check for the dfns.io kinds (DfnsServiceAccount, DfnsPersonalAccessToken,
-- DfnsConnection, ClusterDfnsConnection). It reads the kstatus conditions the operator writes:
-- Stalled=True needs a person (Degraded), Reconciling=True is work in progress, Ready decides
-- otherwise. A status older than the spec (observedGeneration < generation) is still in progress.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or c.type
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator is cleaning up in Dfns"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for dfns-operator to reconcile"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for dfns-operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = condition(status.conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready ~= nil and ready.status == "False" then
  -- Deactivated in Dfns by someone else: the operator never undoes that on its own.
  if ready.reason == "DeactivatedInDfns" then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for dfns-operator to report Ready"
return hs
